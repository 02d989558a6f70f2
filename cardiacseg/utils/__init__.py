"""Small utilities with no cardiac knowledge, used by every layer (standard library only)."""

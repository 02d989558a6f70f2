"""Networks implemented in cardiacseg (the rest come from MONAI)."""

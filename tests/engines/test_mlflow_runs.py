"""MLflow tracking: command-line switches and one run per training (a killed run is not re-used)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiacseg.config import as_bool
from cardiacseg.handlers import mlflow_handler, mlflow_run_name

mlflow = pytest.importorskip("mlflow")
ignite_engine = pytest.importorskip("ignite.engine")


@pytest.mark.parametrize(
    ("word", "expected"),
    [("false", False), ("False", False), ("0", False), ("no", False), ("true", True), (1, True)],
)
def test_command_line_switch_words(word: str | int, expected: bool) -> None:
    assert as_bool(word) is expected
    if not expected:
        assert mlflow_handler("sqlite:////nonexistent/x.db", enabled=word) is None


def test_unknown_switch_word_is_an_error() -> None:
    with pytest.raises(ValueError, match="fasle"):
        as_bool("fasle")


def _run(uri: str, ckpt: Path, params: dict[str, int], finish: bool) -> None:
    engine = ignite_engine.Engine(lambda e, b: {"loss": 0.5})
    handler = mlflow_handler(uri, "exp", run_name=mlflow_run_name(str(ckpt), params), params=params)
    handler.attach(engine)
    if finish:
        engine.run([0], max_epochs=1)
    else:  # started, then killed: the run stays RUNNING in the store
        handler.start(engine)


def test_killed_run_with_other_parameters_starts_a_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MONAI's handler prefers MLFLOW_TRACKING_URI (set by any earlier mlflow.set_tracking_uri) to its argument
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    _run(uri, tmp_path / "ckpt", {"epochs": 8}, finish=False)
    # MONAI's handler alone would continue the unfinished run and fail to change 'epochs' 8 -> 10
    _run(uri, tmp_path / "ckpt", {"epochs": 10}, finish=True)
    _run(uri, tmp_path / "ckpt", {"epochs": 8}, finish=True)  # the killed training resumed: same run
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("exp")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["epochs"] for r in runs) == ["10", "8"]
    assert {r.info.status for r in runs} == {"FINISHED"}

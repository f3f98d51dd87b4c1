"""doctor says, per source and for the store, what works and exactly what does not."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import demo_env, run_cli


def test_doctor_reports_each_source(demo_dir: Path) -> None:
    cfg = str(demo_dir / "governor.toml")
    before = json.loads(run_cli("-c", cfg, "doctor", "--json", env=demo_env()).out)
    store = before[0]
    assert store["source"] == "(store)" and not store["ok"]
    assert "run `governor db upgrade`" in store["checks"][-1]["detail"]

    assert run_cli("-c", cfg, "db", "upgrade", env=demo_env()).code == 0
    ok = run_cli("-c", cfg, "doctor", env=demo_env())
    assert ok.code == 0, ok.out + ok.err
    assert "all sources reachable" in ok.out

    (demo_dir / "vault.json").unlink()
    bad = run_cli("-c", cfg, "doctor", "--json", env=demo_env())
    assert bad.code == 5
    vault = next(r for r in json.loads(bad.out) if r["source"] == "vault")
    assert vault["checks"] == [{"step": "open", "ok": False,
                                "detail": f"{demo_dir / 'vault.json'}: file not found"}]


def test_doctor_names_the_key_of_a_source_path_that_is_a_directory(demo_dir: Path) -> None:
    cfg = demo_dir / "governor.toml"
    (demo_dir / "exports").mkdir()
    cfg.write_text(cfg.read_text().replace('path = "vault.json"', 'path = "exports"'))
    assert run_cli("-c", str(cfg), "db", "upgrade", env=demo_env()).code == 0
    bad = run_cli("-c", str(cfg), "doctor", "--json", env=demo_env())
    assert bad.code == 5
    vault = next(r for r in json.loads(bad.out) if r["source"] == "vault")
    assert vault["checks"] == [{"step": "open", "ok": False, "detail": (
        f"{demo_dir / 'exports'}: sources.vault.path: is a directory, not an export file; "
        "name the file itself")}]

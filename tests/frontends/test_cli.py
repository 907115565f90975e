"""The `symgraph` console script's `info` command reports real versions."""

import numpy

from frontends.cli import main


def test_info_prints_versions(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"numpy    {numpy.__version__}" in out
    assert out.startswith("symgraph ")

"""Phase boundaries as curves in the plane of any two rank-one fields
(`mfrnn.phase_boundaries`, drawn by `mfrnn phase`)."""

import numpy as np
import pytest

import mfrnn


def test_kappa_line_without_g_is_the_critical_overlap():
    # g < 1: Delta0 = 0, so kappa = 0 loses stability at mean_m mean_n = 1 / tanh'(0) = 1.
    mean_m = np.array([0.5, 2.0])  # two points, as below: one compilation for both
    lines = mfrnn.phase_boundaries({"mean_m": mean_m, "mean_n": np.linspace(0, 3, 3)},
                                   {"g": 0.5, "sigma_mn": 0.2})
    assert [line.name for line in lines] == ["kappa"]  # g_C needs g as an axis
    np.testing.assert_allclose(lines[0].x, mean_m)
    np.testing.assert_allclose(lines[0].y, 0.8 / mean_m, rtol=1e-10)
    two = np.array([1.0, 2.0])
    assert mfrnn.phase_boundaries({"sigma_m": two, "sigma_n": two}) == ()


def test_boundaries_in_the_mastrogiuseppe_ostojic_plane():
    # (g, mean_n) at M_m = 1.1, s_m = s_n = 1: the pitchfork at M_m M_n = 1 for g < 1,
    # and g_C = 1.796 at M_n = 2 (Mastrogiuseppe & Ostojic 2018).
    kappa, chaos = mfrnn.phase_boundaries(
        {"g": np.array([0.5, 2.5]), "mean_n": np.array([2.0])}, {"mean_m": 1.1}
    )
    assert (kappa.name, chaos.name) == ("kappa", "chaos")
    np.testing.assert_allclose(kappa.x, [0.5, 2.5])
    assert float(kappa.y[0]) == pytest.approx(1 / 1.1, rel=1e-10)
    assert float(kappa.y[1]) > float(kappa.y[0])  # g_BB: chaos needs more overlap
    assert float(chaos.x[0]) == pytest.approx(1.796, abs=2e-3) and float(chaos.y[0]) == 2.0
    with pytest.raises(ValueError, match="are axes"):
        mfrnn.phase_boundaries({"g": np.ones(1), "mean_n": np.ones(1)}, {"g": 1.0})
    with pytest.raises(ValueError, match="Unknown fields"):
        mfrnn.phase_boundaries({"g": np.ones(1), "kappa": np.ones(1)})

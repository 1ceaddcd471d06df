"""The fast paths match BoTorch (posterior, GIBBON); conditioning and warm starts work."""

from __future__ import annotations

import json

import numpy as np
import torch
from botorch.acquisition.max_value_entropy_search import qLowerBoundMaxValueEntropy

from mixing.bo import engine
from mixing.bo.acquisition import greedy_batch, information_gain, sample_min_values
from mixing.bo.device import bo_device
from mixing.bo.encoding import encode
from mixing.bo.surrogate import botorch_model
from mixing.compute import Device
from mixing.methods.bo import BayesOptMethod
from tests.mixing.bo.synthetic import HIGH, LOW, SMALL, SPACE, context, observations, problem

CPU = bo_device(Device.CPU)


def _fitted(n_low: int = 30, n_high: int = 10, seed: int = 0) -> engine.Surrogate:
    obs = observations(n_low, n_high, seed)
    return engine.fit_surrogate(problem(), obs, CPU, np.random.default_rng(seed), None, SMALL)


def test_exact_posterior_matches_botorch() -> None:
    s = _fitted()
    post = s.gp.posterior
    model = botorch_model(post.x, post.y, 4, 1, s.gp.state["params"])
    mix = np.random.default_rng(1).dirichlet(np.ones(4), 50)
    z, z_t = s.inputs(mix, np.array([LOW])), s.inputs(mix, np.array([HIGH]))
    mean, var = post.mean_var(z)
    ref = model.posterior(z)
    assert torch.allclose(mean, ref.mean[:, 0], atol=1e-6)
    assert torch.allclose(var, ref.variance[:, 0], rtol=1e-4, atol=1e-8)
    paired = post.paired(z, z_t)
    var_b, cov_ab = paired.ref_var, paired.cov
    pairs = model.posterior(torch.stack([z, z_t], dim=1)).mvn.covariance_matrix
    assert torch.allclose(cov_ab, pairs[:, 0, 1], rtol=1e-4, atol=1e-8)
    assert torch.allclose(var_b, pairs[:, 1, 1], rtol=1e-4, atol=1e-8)
    _, joint = post.joint(z[:5])
    assert torch.allclose(joint, model.posterior(z[:5]).mvn.covariance_matrix, atol=1e-8)


def test_difference_of_two_mixtures_is_botorchs_joint_posterior_in_loss_units() -> None:
    s = _fitted()
    post = s.gp.posterior
    model = botorch_model(post.x, post.y, 4, 1, s.gp.state["params"])
    a, b = np.random.default_rng(2).dirichlet(np.ones(4), 2)
    gap, gap_sd = s.difference(a, b, np.array([HIGH]))
    with torch.no_grad():
        mvn = model.posterior(s.inputs(np.stack([a, b]), np.array([HIGH]))).mvn
    cov = mvn.covariance_matrix
    assert np.isclose(gap, float(mvn.mean[0] - mvn.mean[1]) * s.gp.y_std, rtol=1e-6)
    assert np.isclose(gap_sd, float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) ** 0.5 * s.gp.y_std, rtol=1e-4)
    # the loss-unit means of predict() agree, and a mixture does not differ from itself
    m, _ = s.predict(np.stack([a, b]), np.array([HIGH]))
    assert np.isclose(gap, m[0] - m[1], rtol=1e-6)
    assert s.difference(a, a, np.array([HIGH])) == (0.0, 0.0)


def test_information_gain_matches_botorch_gibbon() -> None:
    s = _fitted(0, 30, seed=2)  # single level: BoTorch's single-fidelity GIBBON applies directly
    post = s.gp.posterior
    model = botorch_model(post.x, post.y, 4, 1, s.gp.state["params"])
    z = s.inputs(np.random.default_rng(3).dirichlet(np.ones(4), 40), np.array([HIGH]))
    min_values = sample_min_values(post, z, 8, np.random.default_rng(4))
    acq = qLowerBoundMaxValueEntropy(model, candidate_set=z, num_mv_samples=8, maximize=False)
    acq.posterior_max_values = -min_values.unsqueeze(-1)  # BoTorch minimises by maximising -f
    ref = acq(z.unsqueeze(1))
    mean, var = post.mean_var(z)
    ours = information_gain(mean, var, var + post.noise, var, min_values)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-7)
    assert bool((ours >= 0).all()) and float(ours.max()) > 1e-3


def test_believing_a_run_shrinks_variance_there_and_keeps_the_mean() -> None:
    post = _fitted().gp.posterior
    z = post.x[:1] * 0.9 + 0.05
    mean0, var0 = post.mean_var(z)
    mean1, var1 = post.believe(z).mean_var(z)
    assert torch.allclose(mean0, mean1, atol=1e-8)
    assert float(var1) < 0.5 * float(var0) or float(var1) < post.noise


def test_greedy_batch_matches_refitting_with_the_picked_runs_believed() -> None:
    s = _fitted()
    post = s.gp.posterior
    mix = np.random.default_rng(6).dirichlet(np.ones(4), 20)
    z_obs, z_t = s.inputs(mix, np.array([LOW])), s.inputs(mix, np.array([HIGH]))
    min_values = sample_min_values(post, z_t, 8, np.random.default_rng(7))
    mean_t = post.paired(z_obs, z_t).ref_mean
    idx = torch.arange(20)

    def gain(c: torch.Tensor) -> torch.Tensor:
        d = c.diagonal()
        return information_gain(mean_t, d[20:], d[:20] + post.noise, c[idx, idx + 20], min_values)

    cost = torch.ones(20, dtype=torch.float64)
    picks = greedy_batch(gain, post.joint(torch.cat([z_obs, z_t]))[1], post.noise, cost, 2)
    first = picks[0][0]
    after = post.believe(z_obs[first : first + 1])
    paired = after.paired(z_obs, z_t)
    var_o, var_t, cov_ot = paired.var, paired.ref_var, paired.cov
    again = information_gain(mean_t, var_t, var_o + post.noise, cov_ot, min_values)
    assert picks[1][0] == int(torch.argmax(torch.where(idx == first, -1.0, again)))
    assert abs(picks[1][1] - float(again[picks[1][0]])) < 1e-6


def test_warm_start_state_is_json_and_is_reused() -> None:
    obs = observations(30, 10, seed=3)
    rec = BayesOptMethod(SMALL).recommend(context(obs))
    state = json.loads(json.dumps(rec.details["bo_state"]))
    assert rec.details["fit"]["warm_start"] is False
    warm = BayesOptMethod(SMALL).recommend(
        context(observations(31, 10, seed=3), hints={"bo_state": state})
    )
    assert warm.details["fit"]["warm_start"] is True
    other = dict(state, key="logit|4|1|v1")
    cold = BayesOptMethod(SMALL).recommend(context(obs, hints={"bo_state": other}))
    assert cold.details["fit"]["warm_start"] is False


def test_encodings_keep_every_domain_and_fidelity_axis() -> None:
    w = np.array([[0.0, 0.25, 0.75, 0.0]])
    for kind in ("sqrt", "identity", "logit"):
        x = encode(w, SPACE.normalise([[HIGH]]), kind)
        assert x.shape == (1, 5) and x[0, -1] == 1.0
        assert x[0, 0] == x[0, 3] == 0.0 and x[0, 2] > x[0, 1] > 0

"""Semantics of the particle worlds: symmetry, physics, rewards, phases, seeding and input checks."""
import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

import particle_envs as pe
from helpers import ROOT

SPREAD_N = (2, 3, 4)
SPREAD_N_BEYOND = (5, 6, 7, 8)  # beyond the paper: unit cells in two rows (pe.cell_centres)


def random_state(env, rng):
    """Scatter every agent (and the box) at random so that no test depends on the start distribution."""
    env.pos = rng.uniform(-1.5, 1.5, env.pos.shape)
    env.vel = rng.normal(0.0, 1.0, env.vel.shape)
    if isinstance(env, pe.PushBox):
        env.box_pos = rng.uniform(-0.5, 0.5, env.box_pos.shape)
        env.box_vel = rng.normal(0.0, 1.0, env.box_vel.shape)


def all_envs(num_envs=1, **kwargs):
    return [pe.make("spread", num_envs=num_envs, n_agents=n, **kwargs) for n in SPREAD_N] + [
        pe.make("push_box", num_envs=num_envs, task=3, **kwargs)]


@pytest.mark.parametrize(
    "env", all_envs(num_envs=500) + [pe.make("spread", num_envs=500, n_agents=n) for n in SPREAD_N_BEYOND],
    ids=["spread2", "spread3", "spread4", "push_box"] + [f"spread{n}" for n in SPREAD_N_BEYOND])
def test_swapping_agents_swaps_observations(env):
    rng = np.random.default_rng(0)
    env.reset(seed=1)
    for _ in range(5):
        random_state(env, rng)
        obs = env.observe()
        for i, j in itertools.combinations(range(env.n_agents), 2):
            perm = np.arange(env.n_agents)
            perm[[i, j]] = [j, i]
            pos, vel = env.pos.copy(), env.vel.copy()
            env.pos, env.vel = pos[:, perm], vel[:, perm]
            swapped = env.observe()
            env.pos, env.vel = pos, vel
            assert np.array_equal(swapped, obs[:, perm]), (i, j)  # i sees what j saw, j what i saw, others unchanged
        # the check a user runs on their own world says the same, and leaves the world as it was
        assert pe.swap_consistency_errors(env.observe, env.swap_agents, env.n_agents) == []
        assert np.array_equal(env.observe(), obs)


def test_swap_consistency_errors_names_the_pairs_a_world_in_index_order_breaks():
    # MPE2's simple_spread lists the other agents in index order: agent 0 sees (1, 2), agent 1 sees (0, 2). Swapping
    # agents 0 and 1 then swaps their own parts but not the order of the others in agent 2's view, nor within theirs
    env = pe.make("spread", num_envs=50, n_agents=3)
    env.reset(seed=0)
    random_state(env, np.random.default_rng(4))

    def index_order():
        rel = env.pos[:, None, :, :] - env.pos[:, :, None, :]  # (N, observer, other, 2)
        others = np.stack([np.delete(rel[:, i], i, axis=1) for i in range(3)], axis=1)
        return np.concatenate([env.vel, env.pos, others.reshape(50, 3, 4)], axis=-1)

    assert pe.swap_consistency_errors(index_order, env.swap_agents, 3) == [(0, 1), (0, 2), (1, 2)]
    assert pe.swap_consistency_errors(env.observe, env.swap_agents, 3) == []  # the heading order passes


@pytest.mark.parametrize("n", SPREAD_N)
def test_every_permutation_permutes_observations(n):
    # Eq. (5): the joint observation of a permuted state is the permuted joint observation.
    env = pe.make("spread", num_envs=200, n_agents=n)
    env.reset(seed=0)
    random_state(env, np.random.default_rng(1))
    obs = env.observe()
    for perm in itertools.permutations(range(n)):
        env2 = pe.make("spread", num_envs=200, n_agents=n)
        env2.reset(seed=0)
        env2.pos, env2.vel = env.pos[:, perm], env.vel[:, perm]
        assert np.array_equal(env2.observe(), obs[:, list(perm)])


@pytest.mark.parametrize("num_envs", [100, 300])  # from 5 agents, both of others_by_heading's sorts
@pytest.mark.parametrize("n", SPREAD_N + SPREAD_N_BEYOND)
def test_other_agents_are_sorted_by_atan2_heading(n, num_envs):
    env = pe.make("spread", num_envs=num_envs, n_agents=n)
    env.reset(seed=0)
    random_state(env, np.random.default_rng(2))
    others = env.observe()[..., 4 + 2 * n :].reshape(num_envs, n, n - 1, 2).astype(np.float64)
    heading = np.arctan2(others[..., 1], others[..., 0])
    assert (np.diff(heading, axis=-1) >= 0).all()
    # and they are the other agents, relative to the observer
    for i in range(n):
        rel = np.delete(env.pos, i, axis=1) - env.pos[:, i : i + 1]
        order = np.argsort(np.arctan2(rel[..., 1], rel[..., 0]), axis=-1)
        expected = np.take_along_axis(rel, order[..., None], axis=1).astype(np.float32)
        assert np.array_equal(others[:, i].astype(np.float32), expected)


@pytest.mark.parametrize("n", SPREAD_N_BEYOND)
def test_the_two_sorts_by_heading_give_the_same_numbers(n):
    # others_by_heading sorts up to 1024 rows (worlds x agents) by np.argsort from 5 agents, more by its network:
    # a batch sorted in slices of 100 worlds equals the batch sorted whole, even with equal headings and positions
    env = pe.make("spread", num_envs=1, n_agents=n)
    pos = np.random.default_rng(4).integers(-2, 3, (1000, n, 2)) / 4  # on a coarse grid: many exact ties
    whole = pe.others_by_heading(pos, env.others, env.selves)
    sliced = [pe.others_by_heading(pos[k : k + 100], env.others, env.selves) for k in range(0, 1000, 100)]
    assert np.array_equal(whole, np.concatenate(sliced))


def test_heading_key_orders_like_atan2():
    rng = np.random.default_rng(3)
    dx, dy = rng.normal(size=(2, 10000))
    dx[:8], dy[:8] = [1, 1, 0, -1, -1, -1, 0, 1], [0, 1, 1, 1, 0, -1, -1, -1]  # the axes and diagonals
    key = pe.heading_key(dx, dy)
    assert np.array_equal(np.argsort(key, kind="stable"), np.argsort(np.arctan2(dy, dx), kind="stable"))


def test_discrete_action_force_mapping():
    # 0 no-op, 1 +x, 2 -x, 3 +y, 4 -y (original MPE); from rest, one step: vel = force/mass*dt, pos += vel*dt.
    expected = {0: (0, 0), 1: (1, 0), 2: (-1, 0), 3: (0, 1), 4: (0, -1)}
    for action, direction in expected.items():
        env = pe.make("spread", num_envs=1, n_agents=2, collisions=False)
        env.reset(seed=0)
        env.pos[0] = [[-0.8, -0.8], [0.8, 0.8]]  # far apart: no contact force
        env.step(np.array([[action, 0]]))
        np.testing.assert_allclose(env.vel[0, 0], 5.0 * 0.1 * np.array(direction), atol=1e-12)
        np.testing.assert_allclose(env.pos[0, 0], [-0.8, -0.8] + 0.1 * env.vel[0, 0], atol=1e-12)


def test_continuous_action_is_a_force_scaled_by_sensitivity():
    env = pe.make("spread", num_envs=1, n_agents=2, continuous=True)
    env.reset(seed=0)
    env.pos[0] = [[-0.8, -0.8], [0.8, 0.8]]
    env.step(np.array([[[0.3, -0.7], [0.0, 0.0]]]))
    np.testing.assert_allclose(env.vel[0, 0], [0.3 * 5 * 0.1, -0.7 * 5 * 0.1], atol=1e-12)


def test_one_step_matches_hand_computed_mpe_numbers():
    # Two overlapping agents with velocities; agent 0 pushes +x. Worked out with scalars, MPE core.py style.
    env = pe.make("spread", num_envs=1, n_agents=2)
    env.reset(seed=0)
    p0, p1 = np.array([0.0, 0.0]), np.array([0.25, 0.1])
    v0, v1 = np.array([0.4, -0.2]), np.array([-0.1, 0.3])
    env.pos[0], env.vel[0] = [p0, p1], [v0, v1]
    env.step(np.array([[1, 0]]))
    dist = math.hypot(0.25, 0.1)
    penetration = math.log(1 + math.exp(-(dist - 0.3) / 1e-3)) * 1e-3
    f0 = 100.0 * (p0 - p1) / dist * penetration
    new_v0 = v0 * 0.75 + (np.array([5.0, 0.0]) + f0) / 1.0 * 0.1
    new_v1 = v1 * 0.75 + (-f0) / 1.0 * 0.1
    np.testing.assert_allclose(env.vel[0], [new_v0, new_v1], rtol=1e-12)
    np.testing.assert_allclose(env.pos[0], [p0 + new_v0 * 0.1, p1 + new_v1 * 0.1], rtol=1e-12)


def test_contact_forces_match_mpe_pairwise_loop():
    rng = np.random.default_rng(4)
    pos = rng.uniform(-0.4, 0.4, (7, 4, 2))
    radii = np.array([0.15, 0.15, 0.1, 0.25])
    got = pe.contact_forces(pos, radii, pe.make_pairs(4), 100.0, 1e-3)
    want = np.zeros_like(pos)
    for b in range(7):
        for a in range(4):
            for c in range(a + 1, 4):  # MPE's apply_environment_force: each pair once, equal and opposite
                delta = pos[b, a] - pos[b, c]
                dist = np.sqrt(np.sum(np.square(delta)))
                penetration = np.logaddexp(0, -(dist - radii[a] - radii[c]) / 1e-3) * 1e-3
                force = 100.0 * delta / dist * penetration
                want[b, a] += force
                want[b, c] -= force
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_spread_reward_matches_brute_force():
    env = pe.make("spread", num_envs=50, n_agents=4)
    env.reset(seed=0)
    random_state(env, np.random.default_rng(5))
    env.pos[0, 1] = env.pos[0, 0] + [0.1, 0.0]  # make sure some pairs collide
    env.pos[1, 2] = env.pos[1, 3] + [0.0, -0.29]
    reward = env.reward()
    for b in range(50):
        want = 0.0
        for target in env.targets[b]:
            want -= min(np.linalg.norm(target - agent) for agent in env.pos[b])
        for a, c in itertools.combinations(range(4), 2):
            want -= float(np.linalg.norm(env.pos[b, a] - env.pos[b, c]) < 0.3)
        assert reward[b] == pytest.approx(want, rel=1e-12)
    assert reward[0] < -1 and reward[1] < -1


def test_push_box_reward_is_minus_squared_distance():
    env = pe.make("push_box", num_envs=20, task=3)
    env.reset(seed=0)
    random_state(env, np.random.default_rng(6))
    np.testing.assert_allclose(env.reward(), -np.sum((env.target - env.box_pos) ** 2, axis=1), rtol=1e-12)


def test_phase1_agents_start_in_their_own_quadrant_and_targets_at_centres():
    signs = np.array([[-1, -1], [1, 1], [-1, 1], [1, -1]])  # LL, UR, UL, LR
    for n in SPREAD_N:
        env = pe.make("spread", num_envs=400, n_agents=n, phase=1)
        env.reset(seed=0)
        assert (np.sign(env.pos) == signs[:n]).all()
        np.testing.assert_array_equal(env.targets[0], 0.5 * signs[:n])


def test_phase2_assignments():
    signs = np.array([[-1, -1], [1, 1], [-1, 1], [1, -1]])
    env = pe.make("spread", num_envs=400, n_agents=2, phase=2)
    env.reset(seed=0)
    assert (np.sign(env.pos) == signs[[1, 0]]).all()  # LL <-> UR
    env = pe.make("spread", num_envs=400, n_agents=3, phase=2)
    env.reset(seed=0)
    assert (np.sign(env.pos) == signs[[1, 2, 0]]).all()  # fixed cyclic shift
    env = pe.make("spread", num_envs=2000, n_agents=4, phase=2)
    seen = set()
    for seed in range(2):
        env.reset(seed=seed)
        assert (np.sort(env.quadrants, axis=1) == np.arange(4)).all()  # a permutation in every world
        assert (np.sign(env.pos) == signs[env.quadrants]).all()
        seen |= {tuple(q) for q in env.quadrants}
    assert len(seen) == 24


def test_cells_are_the_quadrants_up_to_four_agents_and_unit_cells_in_two_rows_beyond():
    np.testing.assert_array_equal(pe.cell_centres(4), pe.QUADRANT_CENTRES)
    np.testing.assert_array_equal(pe.cell_centres(5), [[-1, -0.5], [-1, 0.5], [0, -0.5], [0, 0.5], [1, -0.5]])
    for n in SPREAD_N_BEYOND:
        centres = pe.cell_centres(n)
        columns = (n + 1) // 2
        # column by column from the left, lower cell first; the columns 1 apart and centred on the origin
        np.testing.assert_array_equal(centres[:, 0], np.arange(n) // 2 - (columns - 1) / 2)
        np.testing.assert_array_equal(centres[:, 1], np.tile([-0.5, 0.5], columns)[:n])
        # distinct unit cells: two unit squares overlap iff their centres are less than 1 apart along both axes
        apart = np.abs(centres[:, None] - centres[None]).max(-1)
        assert (apart[~np.eye(n, dtype=bool)] >= 1).all()


@pytest.mark.parametrize("n", SPREAD_N_BEYOND)
def test_phase1_agent_k_starts_anywhere_in_cell_k_and_targets_sit_at_the_cell_centres(n):
    env = pe.make("spread", num_envs=400, n_agents=n, phase=1)
    env.reset(seed=0)
    centres = pe.cell_centres(n)
    offset = env.pos - centres  # (world, agent, axis) from agent k's cell centre
    assert (np.abs(offset) <= 0.5).all()
    assert (offset.min(axis=0) < -0.45).all() and (offset.max(axis=0) > 0.45).all()  # the whole cell, not a part
    np.testing.assert_array_equal(env.targets, np.broadcast_to(centres, env.targets.shape))


def derangements(n):
    return math.floor(math.factorial(n) / math.e + 0.5)  # 44, 265, 1854, 14833 for n = 5 to 8


@pytest.mark.parametrize("n", SPREAD_N_BEYOND)
def test_phase2_beyond_four_every_agent_starts_in_a_cell_another_agent_explored(n):
    worlds = 1000
    env = pe.make("spread", num_envs=worlds, n_agents=n, phase=2)
    env.reset(seed=0)
    cells = env.quadrants.copy()
    assert (np.sort(cells, axis=1) == np.arange(n)).all()  # a permutation of the cells in every world
    assert (cells != np.arange(n)).all()  # nobody in its own Phase I cell
    assert (np.abs(env.pos - pe.cell_centres(n)[cells]) <= 0.5).all()
    np.testing.assert_array_equal(env.targets, np.broadcast_to(pe.cell_centres(n), env.targets.shape))
    # drawn per world: about as many distinct ones as `worlds` uniform draws of the D(n) derangements give
    distinct = len({tuple(row) for row in cells})
    assert distinct > 0.95 * derangements(n) * (1 - (1 - 1 / derangements(n)) ** worlds), distinct
    # and per episode: the next reset draws again in (nearly) every world
    env.reset()
    assert (env.quadrants != np.arange(n)).all()
    assert (env.quadrants != cells).any(axis=1).mean() > 0.9


def test_phase2_derangements_are_uniform():
    # n = 5: each of the 44 derangements equally likely (not, say, only the 4 cyclic shifts, or a fixed point
    # patched by a swap, which favours some)
    draws, expected = 22_000, 22_000 / 44
    env = pe.make("spread", num_envs=draws, n_agents=5, phase=2)
    env.reset(seed=0)
    allowed = {p for p in itertools.permutations(range(5)) if all(p[k] != k for k in range(5))}
    assert len(allowed) == derangements(5) == 44
    seen, counts = np.unique(env.quadrants, axis=0, return_counts=True)
    assert {tuple(p) for p in seen} == allowed
    # chi-square with 43 degrees of freedom: mean 43, standard deviation sqrt(2 * 43) = 9.3
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 43 + 6 * (2 * 43) ** 0.5, chi2


def old_spread_starts(n, phase, num_envs, rng):
    """Spread's reset for 2-4 agents as it was before cell_centres (1267f11^), draw for draw."""
    if phase == 1:
        quadrants = np.broadcast_to(np.arange(n), (num_envs, n))
    elif n == 4:
        quadrants = rng.permuted(np.tile(np.arange(4), (num_envs, 1)), axis=1)
    else:
        quadrants = np.broadcast_to(pe.PHASE2_QUADRANTS[n], (num_envs, n))
    pos = pe.QUADRANT_CENTRES[quadrants] + rng.uniform(-0.5, 0.5, (num_envs, n, 2))
    targets = pe.QUADRANT_CENTRES[:n] + 0.0 * rng.uniform(-1.0, 1.0, (num_envs, n, 2))
    return pos, targets


@pytest.mark.parametrize("n", SPREAD_N)
def test_starts_up_to_four_agents_are_drawn_as_before_the_cells(n):
    # the paper's configurations keep their random streams (the fingerprint test pins the scripts at n = 3)
    for phase in (1, 2):
        env, rng = pe.make("spread", num_envs=64, n_agents=n, phase=phase), np.random.default_rng(5)
        for episode in range(2):
            env.reset(seed=5 if episode == 0 else None)
            pos, targets = old_spread_starts(n, phase, 64, rng)
            assert np.array_equal(env.pos, pos) and np.array_equal(env.targets, targets), (phase, episode)


def test_push_box_targets_by_task():
    for task, target in ((1, [-0.75, 0.0]), (2, [0.75, 0.0])):
        env = pe.make("push_box", num_envs=10, task=task)
        env.reset(seed=0)
        assert (env.target == target).all()
    env = pe.make("push_box", num_envs=3000, task=3)
    env.reset(seed=0)
    counts = np.bincount(env.target_index, minlength=3)
    assert (counts > 900).all()
    np.testing.assert_array_equal(env.target, pe.BOX_TARGETS[env.target_index])
    assert np.allclose(np.linalg.norm(pe.BOX_TARGETS, axis=1), 0.75)


def rotate(v, angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def scripted_push(env, pushers):
    """Agents in `pushers` hold a contact point behind the box (a pair at +-0.5 rad, one alone straight behind it)
    and push toward the target."""
    for _ in range(env.horizon):
        to_target = env.target[0] - env.box_pos[0]
        dist = np.linalg.norm(to_target)
        d = to_target / max(dist, 1e-9)
        actions = np.zeros((1, 2, 2))
        for k in pushers:
            side = 0.0 if len(pushers) == 1 else (0.5 if k == 0 else -0.5)
            contact_point = env.box_pos[0] - rotate(d, side) * 0.33
            to_centre = (env.box_pos[0] - env.pos[0, k]) / np.linalg.norm(env.box_pos[0] - env.pos[0, k])
            u = to_centre * min(1.0, 3 * dist) + 3 * (contact_point - env.pos[0, k])  # push through the centre
            actions[0, k] = u / max(1.0, np.linalg.norm(u))
        env.step(actions)


def pushed_box(target_index, pushers, **kwargs):
    """Box position after one episode of `pushers` starting just behind the box, the others parked far away."""
    env = pe.make("push_box", num_envs=1, task=3, continuous=True, **kwargs)
    env.reset(seed=0)
    env.target_index[:] = target_index
    env.target = pe.BOX_TARGETS[env.target_index]
    d = env.target[0] / 0.75
    env.pos[0] = [-rotate(d, 0.5) * 0.34, -rotate(d, -0.5) * 0.34]  # both just behind the box
    if 1 not in pushers:
        env.pos[0] = [-d * 0.34, [1.2, 1.2]]  # agent 0 straight behind the box, agent 1 far away, idle
    scripted_push(env, pushers)
    return env


@pytest.mark.parametrize("target_index", [0, 1, 2])
def test_two_scripted_pushers_move_the_box_under_the_literal_rule(target_index):
    env = pushed_box(target_index, (0, 1), box_rule="both")
    assert env.box_pos[0] @ (env.target[0] / 0.75) > 0.6  # most of the way to the target, 0.75 away


@pytest.mark.parametrize("target_index", [0, 1, 2])
def test_one_pusher_never_moves_the_box_under_the_literal_rule(target_index):
    env = pushed_box(target_index, (0,), box_rule="both")
    assert (env.box_pos == 0).all() and (env.box_vel == 0).all()
    assert np.linalg.norm(env.pos[0, 0]) < 0.36  # it really was pushing against the box


@pytest.mark.parametrize("target_index", [0, 1, 2])
def test_heavy_box_one_pusher_moves_it_slowly_two_faster(target_index):
    target = pe.BOX_TARGETS[target_index]
    travelled = {}
    for pushers in ((0,), (0, 1)):
        env = pushed_box(target_index, pushers)  # the default rule: heavy
        travelled[pushers] = env.box_pos[0] @ (target / 0.75)  # distance covered toward the target
        assert abs(env.box_pos[0] @ rotate(target / 0.75, np.pi / 2)) < 0.05  # and not off to the side
    assert travelled[(0,)] > 0.3
    assert travelled[(0, 1)] > 1.3 * travelled[(0,)]


def test_heavy_box_step_matches_hand_computed_mpe_numbers():
    # Agent 0 overlaps the box and pushes -x; agent 1 is far away. The box is an ordinary MPE entity of mass m.
    m = 5.0
    env = pe.make("push_box", num_envs=1, task=1, box_mass=m)
    env.reset(seed=0)
    p0, box = np.array([0.3, 0.05]), np.array([0.02, -0.01])
    v0, box_v = np.array([-0.4, 0.1]), np.array([-0.2, 0.05])
    env.pos[0], env.vel[0] = [p0, [2.0, 2.0]], [v0, [0.0, 0.0]]
    env.box_pos[0], env.box_vel[0] = box, box_v
    env.step(np.array([[2, 0]]))
    delta = p0 - box
    dist = math.hypot(*delta)
    penetration = math.log(1 + math.exp(-(dist - 0.35) / 1e-3)) * 1e-3
    f0 = 100.0 * delta / dist * penetration  # on agent 0; -f0 on the box
    new_box_v = box_v * 0.75 + (-f0) / m * 0.1
    new_v0 = v0 * 0.75 + (np.array([-5.0, 0.0]) + f0) / 1.0 * 0.1
    np.testing.assert_allclose(env.box_vel[0], new_box_v, rtol=1e-12)
    np.testing.assert_allclose(env.box_pos[0], box + new_box_v * 0.1, rtol=1e-12)
    np.testing.assert_allclose(env.vel[0, 0], new_v0, rtol=1e-12)
    np.testing.assert_allclose(env.pos[0, 0], p0 + new_v0 * 0.1, rtol=1e-12)
    assert np.linalg.norm(new_box_v * 0.1) > 1e-3  # the contact really moved it
    # the momentum the box gains equals the momentum agent 0 loses to the contact (equal and opposite forces)
    np.testing.assert_allclose(m * (new_box_v - box_v * 0.75), -(new_v0 - v0 * 0.75 - np.array([-0.5, 0.0])),
                               rtol=1e-12)


def test_box_never_moves_under_random_single_agent_actions_under_the_literal_rule():
    env = pe.make("push_box", num_envs=256, task=1, box_rule="both")
    rng = np.random.default_rng(7)
    for episode in range(4):
        env.reset(seed=episode)
        env.pos[:, 1] = [2.0, 2.0]  # out of reach
        for _ in range(env.horizon):
            actions = np.stack([rng.integers(0, 5, 256), np.zeros(256, int)], axis=1)
            env.step(actions)
            assert (env.box_pos == 0).all()


def test_same_seed_same_trajectory_bit_for_bit():
    def rollout(seed, domain, **kwargs):
        env = pe.make(domain, num_envs=16, **kwargs)
        rng = np.random.default_rng(123)
        out = [env.reset(seed=seed)]
        for _ in range(2):
            for _ in range(env.horizon):
                obs, reward, _, _, _ = env.step(rng.integers(0, 5, (16, env.n_agents)))
                out += [obs, reward]
            out.append(env.reset())
        return out

    for domain, kwargs in (("spread", dict(n_agents=4, phase=2)), ("spread", dict(n_agents=8, phase=2)),
                           ("push_box", dict(task=3))):
        a, b, c = rollout(0, domain, **kwargs), rollout(0, domain, **kwargs), rollout(1, domain, **kwargs)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("continuous", [False, True])
def test_spaces_contain_everything_produced(continuous):
    rng = np.random.default_rng(8)
    for env in all_envs(num_envs=8, continuous=continuous):
        obs = env.reset(seed=0)
        assert obs.dtype == np.float32 and obs.shape == (8, env.n_agents) + env.single_observation_space.shape
        for _ in range(env.horizon):
            if continuous:
                actions = rng.uniform(-1, 1, (8, env.n_agents, 2))
            else:
                actions = rng.integers(0, 5, (8, env.n_agents))
            assert all(env.single_action_space.contains(a.astype(np.float32) if continuous else int(a))
                       for a in actions.reshape((-1, 2) if continuous else -1))
            obs, reward, terminated, truncated, _ = env.step(actions)
            assert all(env.single_observation_space.contains(o) for o in obs.reshape(-1, obs.shape[-1]))
            assert reward.shape == (8,) and terminated.shape == truncated.shape == (8,)


def test_truncation_at_the_horizon_and_no_autoreset():
    env = pe.make("spread", num_envs=3, n_agents=2, horizon=5)
    env.reset(seed=0)
    for t in range(5):
        _, _, terminated, truncated, _ = env.step(np.zeros((3, 2), int))
        assert not terminated.any() and truncated.all() == (t == 4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((3, 2), int))


@pytest.mark.parametrize(
    "make_kwargs, match",
    [
        (dict(domain="soccer"), "unknown domain"),
        (dict(domain="spread", n_agents=9), "n_agents 2 to 8"),
        (dict(domain="spread", n_agents=1), "n_agents 2 to 8"),
        (dict(domain="push_box", n_agents=3), "n_agents 2 only"),
        (dict(domain="spread", phase=3), "phase must be 1 or 2"),
        (dict(domain="push_box", task=4), "task must be 1, 2 or 3"),
        (dict(domain="push_box", box_rule="one"), r"unknown push_box box_rule 'one'; choose one of \['heavy', 'both'\]"),
        (dict(domain="push_box", box_mass=0.0), "box_mass must be positive"),
        (dict(domain="spread", num_envs=0), "positive"),
    ],
)
def test_bad_configuration_is_a_clear_error(make_kwargs, match):
    with pytest.raises(ValueError, match=match):
        pe.make(**make_kwargs)


@pytest.mark.parametrize(
    "continuous, actions, match",
    [
        (False, np.zeros((4, 3), int), "shape"),
        (False, np.zeros((4,), int), "shape"),
        (False, np.zeros((4, 2), float), "integers"),
        (False, np.full((4, 2), 5), "0..4"),
        (False, np.full((4, 2), -1), "0..4"),
        (True, np.zeros((4, 2), float), "shape"),
        (True, np.zeros((4, 2, 2), int), "floats"),
        (True, np.full((4, 2, 2), 1.5), r"\[-1, 1\]"),
        (True, np.full((4, 2, 2), np.nan), r"\[-1, 1\]"),
    ],
)
def test_bad_actions_are_a_clear_error(continuous, actions, match):
    for env in (pe.make("spread", num_envs=4, n_agents=2, continuous=continuous),
                pe.make("push_box", num_envs=4, continuous=continuous)):
        env.reset(seed=0)
        with pytest.raises(ValueError, match=match):
            env.step(actions)


def test_render_draws_the_world():
    for env in all_envs():
        env.reset(seed=0)
        img = env.render()
        assert img.dtype == np.uint8 and img.shape == (256, 256, 3)
        assert (img == pe.AGENT_COLOURS[0]).all(-1).sum() > 50  # agent 0 is visible
        env.pos[0, 0] += 0.3
        assert not np.array_equal(img, env.render())


@pytest.mark.parametrize("phase", [1, 2])
@pytest.mark.parametrize("n", SPREAD_N_BEYOND)
def test_render_beyond_four_shows_every_agent_whole(n, phase):
    assert len(set(pe.AGENT_COLOURS)) == len(pe.AGENT_COLOURS) >= 8
    env = pe.make("spread", num_envs=2, n_agents=n, phase=phase)
    env.reset(seed=0)
    start = pe.cell_centres(n)[env.quadrants[0]]
    env.pos[0] = start + 0.5 * np.sign(start)  # world 0: each agent at the outer corner of its start cell, the farthest
    for world in range(2):
        img = env.render(world)
        for k, colour in enumerate(pe.AGENT_COLOURS[:n]):
            drawn = (img == colour).all(-1)
            assert drawn.sum() > 100, (world, k)  # about 230 pixels (8 agents) with nothing on top
            frame = np.concatenate([drawn[0], drawn[-1], drawn[:, 0], drawn[:, -1]])
            assert not frame.any(), (world, k)  # not cut by the edge of the picture


def full_grid_discs(centres, radii, colours, size=256, extent=1.25):
    """draw_discs as it was first written: every disc tested on every pixel."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    coords = (np.arange(size) + 0.5) / size * 2 * extent - extent
    x, y = np.meshgrid(coords, coords[::-1])
    img[np.abs(x) < extent / size] = 225
    img[np.abs(y) < extent / size] = 225
    for (cx, cy), r, colour in zip(centres, radii, colours):
        img[(x - cx) ** 2 + (y - cy) ** 2 <= r**2] = colour
    return img


def test_draw_discs_bounding_boxes_draw_what_the_full_grid_draws():
    rng = np.random.default_rng(0)
    # discs inside, across the border and outside the picture, tiny to large, on pixel edges too
    centres = np.concatenate([rng.uniform(-1.6, 1.6, (300, 2)), rng.integers(-64, 64, (100, 2)) * 2.5 / 256])
    radii = np.concatenate([rng.uniform(0.001, 0.6, 300), rng.integers(1, 20, 100) * 2.5 / 256])
    colours = [tuple(c) for c in rng.integers(0, 255, (400, 3))]
    for k in range(0, 400, 20):
        sl = slice(k, k + 20)
        np.testing.assert_array_equal(pe.draw_discs(centres[sl], radii[sl], colours[sl]),
                                      full_grid_discs(centres[sl], radii[sl], colours[sl]))


@pytest.mark.parametrize("env", all_envs(num_envs=2), ids=["spread2", "spread3", "spread4", "push_box"])
def test_render_trail_adds_pale_dots_at_earlier_positions_only(env):
    env.reset(seed=0)
    earlier = env.movers()
    movers = earlier.shape[1]
    assert earlier.shape == (2, env.n_agents + isinstance(env, pe.PushBox), 2)
    if isinstance(env, pe.PushBox):
        np.testing.assert_array_equal(earlier[:, 2], env.box_pos)
    env.pos = env.pos + 0.6  # everything that drew the trail has moved away
    if isinstance(env, pe.PushBox):
        env.box_pos = env.box_pos - 0.6
    plain, trailed = env.render(1), env.render(1, trail=earlier[None, 1])
    np.testing.assert_array_equal(plain, env.render(1, trail=None))
    changed = np.argwhere((plain != trailed).any(-1))
    assert len(changed) > 0
    # every changed pixel is within a dot's radius (plus a pixel) of an earlier position of world 1
    xy = np.stack([(changed[:, 1] + 0.5) / 256 * 2.5 - 1.25, 1.25 - (changed[:, 0] + 0.5) / 256 * 2.5], 1)
    gap = np.linalg.norm(xy[:, None] - earlier[1][None], axis=-1).min(1)
    assert gap.max() < 0.02 + 2.5 / 256
    colour = pe.AGENT_COLOURS[0]
    x, y = earlier[1, 0]
    pale = trailed[int((1.25 - y) / 2.5 * 256), int((x + 1.25) / 2.5 * 256)]
    assert (pale > np.array(colour)).all() and (pale < 255).any()  # agent 0's colour, paler
    with pytest.raises(ValueError, match="trail must have shape"):
        env.render(0, trail=np.zeros((3, movers + 1, 2)))


# ------------------------------------------------------------------ PettingZoo view

PETTINGZOO_CASES = [("spread", dict(n_agents=n, continuous=c)) for n in (*SPREAD_N, 8) for c in (False, True)] + [
    ("push_box", dict(task=t, continuous=c)) for t, c in ((1, False), (3, True))]
PETTINGZOO_IDS = [(f"spread{k['n_agents']}" if d == "spread" else f"push_box-task{k['task']}")
                  + ("-continuous" if k["continuous"] else "-discrete") for d, k in PETTINGZOO_CASES]


# positions and velocities are unbounded (there are no walls): the AEC test's warning about it is expected
@pytest.mark.filterwarnings("ignore:Agent's m.* observation space value is .*infinity")
@pytest.mark.parametrize("domain, kwargs", PETTINGZOO_CASES, ids=PETTINGZOO_IDS)
def test_parallel_env_passes_pettingzoo_api_tests(domain, kwargs):
    from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
    from pettingzoo.utils import parallel_to_aec

    parallel_api_test(pe.parallel_env(domain, **kwargs), num_cycles=200)
    parallel_seed_test(lambda: pe.parallel_env(domain, **kwargs))
    api_test(parallel_to_aec(pe.parallel_env(domain, **kwargs)), num_cycles=200)  # and as an AEC env


@pytest.mark.parametrize("domain, kwargs", PETTINGZOO_CASES, ids=PETTINGZOO_IDS)
def test_parallel_env_is_the_vectorized_world_with_one_env(domain, kwargs):
    env, world = pe.parallel_env(domain, horizon=6, **kwargs), pe.make(domain, num_envs=1, horizon=6, **kwargs)
    agents = [f"agent_{i}" for i in range(world.n_agents)]
    assert env.possible_agents == agents and env.agents == []
    observations, infos = env.reset(seed=11)
    obs = world.reset(seed=11)
    assert env.agents == agents and infos == {a: {} for a in agents}
    rng = np.random.default_rng(0)
    for t in range(6):
        for i, a in enumerate(agents):
            np.testing.assert_array_equal(observations[a], obs[0, i])
            assert observations[a] in env.observation_space(a)
        np.testing.assert_array_equal(env.state(), obs[0].reshape(-1))
        np.testing.assert_array_equal(env.render(), world.render(0))
        actions = (rng.uniform(-1, 1, (1, world.n_agents, 2)) if kwargs["continuous"]
                   else rng.integers(0, 5, (1, world.n_agents)))
        observations, rewards, terminations, truncations, infos = env.step(dict(zip(agents, actions[0])))
        obs, reward, _, truncated, _ = world.step(actions)
        assert rewards == {a: reward[0] for a in agents}  # the team reward, to every agent
        assert terminations == {a: False for a in agents}
        assert truncations == {a: t == 5 for a in agents} and truncated[0] == (t == 5)
        assert env.agents == ([] if t == 5 else agents)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(dict(zip(agents, actions[0])))


def test_parallel_env_spaces_and_errors():
    env = pe.parallel_env("push_box", task=3)
    assert env.action_space("agent_0") is env.action_space("agent_0")
    assert env.action_space("agent_0") is not env.action_space("agent_1")  # seeding one leaves the other alone
    assert env.action_space("agent_0") == pe.make("push_box").single_action_space
    assert env.observation_space("agent_1").shape == (12,) and env.state_space.shape == (24,)
    assert env.render_mode == "rgb_array"
    with pytest.raises(RuntimeError, match="reset"):
        env.render()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="missing"):
        env.step({"agent_0": 1})
    with pytest.raises(ValueError, match="num_envs must be 1"):
        pe.parallel_env("spread", num_envs=4)
    with pytest.raises(ValueError, match="render_mode"):
        pe.parallel_env("spread", render_mode="human")
    with pytest.raises(ValueError, match="unknown domain"):
        pe.parallel_env("soccer")


def test_particle_envs_needs_pettingzoo_only_for_parallel_env():
    code = ("import sys; sys.modules['pettingzoo'] = None\n"  # as if it were not installed
            "import particle_envs\n"
            "particle_envs.make('spread', num_envs=2).reset(seed=0)\n"
            "try:\n    particle_envs.parallel_env('spread')\nexcept ImportError:\n    print('ImportError')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ImportError", proc.stderr


@pytest.mark.parametrize("n, cells", [(4, "quadrants"), (6, "cells")])
def test_spread_videos_call_the_start_regions_quadrants_up_to_4_agents_and_cells_beyond(monkeypatch, tmp_path, n,
                                                                                         cells):
    titles = []
    monkeypatch.setattr(pe, "record_gifs", lambda env, policy, paths, names, seed: titles.extend(names) or paths)
    make = lambda num_envs, phase, task: pe.make("spread", num_envs=num_envs, n_agents=n, phase=phase)  # noqa: E731
    paths = pe.record_moment(make, [None], "phase1_end", str(tmp_path))
    assert titles == [f"end of Phase I  |  Phase I start {cells}", f"end of Phase I  |  Phase II start {cells}"]
    assert [p.rsplit("/", 1)[1] for p in paths] == ["phase1_end__phase1_quadrants.gif",
                                                    "phase1_end__phase2_quadrants.gif"]  # names kept: fingerprinted

"""Jarne's tasks (arXiv 1906.01094, J. Comput. Neurosci. 2023; `RNN_study_with_keras`):
logic gates, the set/reset flip-flop, time reproduction and finite-duration oscillation.

Jarne counts 1 ms steps of a discrete-time RNN. Here one of Jarne's steps is 10 ms, so
networks with tau = 100 ms (alpha = dt / tau = 0.1) can follow: the stimulus of the
gates is at 300-500 ms, the memory gap 200 ms, a trial 2000 ms. All durations are
arguments.
"""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr

from .base import AbstractTask, count, masked_mse, number, steps, window


_GATES = {
    "and": (1, lambda a, b: a * b),
    "or": (1, lambda a, b: jnp.maximum(a, b)),
    "xor": (1, lambda a, b: jnp.abs(a - b)),
    "not": (0, lambda a, b: 1.0 - a),
}


class LogicGate(AbstractTask):
    """AND / OR / XOR / NOT on binary pulses (Jarne).

    Both inputs (one for NOT) carry A, B in {0, 1} during `[stim_on, stim_on +
    stim_duration)`, the four (two) combinations equiprobable. The output holds the
    gate's value from `mem_gap` after the stimulus ends to the end of the trial and 0
    before the stimulus; the steps in between are not scored (the network chooses when
    to switch). Correct: the mean output over the response window is on the right side
    of 0.5. Jarne's training criterion is masked MSE < 1e-3.
    """

    name: ClassVar[str] = "logic_gate"
    condition_keys: ClassVar[tuple[str, ...]] = ("a", "b")
    target_loss: ClassVar[float | None] = 1e-3
    gate: str = eqx.field(default="xor", static=True,
                          converter=lambda g: g.lower() if isinstance(g, str) else g)
    dt: float = number(10.0)
    stim_on: float = number(300.0)
    stim_duration: float = number(200.0)
    mem_gap: float = number(200.0)
    duration: float = number(2000.0)
    input_noise: float = number(0.1)

    def __check_init__(self):
        if self.gate not in _GATES:
            raise ValueError(f"Unknown `gate` {self.gate!r}; expected one of {sorted(_GATES)}.")
        if self.stim_on + self.stim_duration + self.mem_gap >= self.duration:
            raise ValueError("`duration` must exceed stim_on + stim_duration + mem_gap.")

    @property
    def n_in(self):
        return 1 if self.gate == "not" else 2

    @property
    def n_out(self):
        return 1

    @property
    def n_steps(self):
        return steps(self.duration, self.dt)

    def trial(self, key):
        ab = jr.bernoulli(key, 0.5, (2,)).astype(float)
        if self.n_in == 1:
            ab = ab.at[1].set(0.0)
        t = jnp.arange(self.n_steps)
        on = steps(self.stim_on, self.dt)
        off = on + steps(self.stim_duration, self.dt)
        resp = off + steps(self.mem_gap, self.dt)
        pulse = window(t, on, off).astype(float)
        u = pulse[:, None] * ab[None, : self.n_in]
        out = _GATES[self.gate][1](ab[0], ab[1])
        y = jnp.where(t >= resp, out, 0.0)[:, None]
        mask = ((t < on) | (t >= resp)).astype(float)[:, None]
        info = dict(a=ab[0], b=ab[1], target=out, response_on=jnp.asarray(resp),
                    response_off=jnp.asarray(self.n_steps))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        t = jnp.arange(z.shape[0])
        w = window(t, info["response_on"], info["response_off"])
        mean = jnp.sum(w * z[:, 0]) / jnp.sum(w)
        return (mean > 0.5) == (info["target"] > 0.5)


class SetResetFlipFlop(AbstractTask):
    """Jarne's 1-bit flip-flop: two inputs (set, reset), `n_turns` pulses per trial.

    Pulse i starts at `first + i (pulse + gap)` on the set or the reset channel (random,
    equiprobable). The output is 1 after a set and 0 after a reset (0 before the first
    pulse); the `grace` after each pulse onset is not scored. Correct: the output is on
    the right side of 0.5 at every scored step after the first pulse.
    """

    name: ClassVar[str] = "flipflop1"
    condition_keys: ClassVar[tuple[str, ...]] = ("last",)
    target_loss: ClassVar[float | None] = 1e-3
    dt: float = number(10.0)
    first: float = number(500.0)
    pulse: float = number(200.0)
    gap: float = number(1000.0)
    n_turns: int = count(3)
    grace: float = number(200.0)
    input_noise: float = number(0.1)

    def __check_init__(self):
        if self.grace > self.pulse + self.gap:
            raise ValueError("`grace` must not exceed pulse + gap.")

    n_in = property(lambda self: 2)
    n_out = property(lambda self: 1)

    @property
    def n_steps(self):
        return steps(self.first, self.dt) + self.n_turns * steps(self.pulse + self.gap, self.dt)

    def trial(self, key):
        sets = jr.bernoulli(key, 0.5, (self.n_turns,))
        t = jnp.arange(self.n_steps)
        first = steps(self.first, self.dt)
        period = steps(self.pulse + self.gap, self.dt)
        turn = jnp.clip((t - first) // period, 0, self.n_turns - 1)
        phase = t - first - turn * period
        started = t >= first
        in_pulse = started & (phase < steps(self.pulse, self.dt))
        is_set = sets[turn]
        u = jnp.stack([in_pulse & is_set, in_pulse & ~is_set], axis=-1).astype(float)
        y = jnp.where(started & is_set, 1.0, 0.0)[:, None]
        scored = ~started | (phase >= steps(self.grace, self.dt))
        mask = scored.astype(float)[:, None]
        info = dict(last=sets[-1].astype(float), n_sets=jnp.sum(sets).astype(float),
                    response_on=jnp.asarray(first), response_off=jnp.asarray(self.n_steps))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        t = jnp.arange(z.shape[0])
        scored = (mask[:, 0] > 0) & (t >= info["response_on"])
        ok = (z[:, 0] > 0.5) == (y[:, 0] > 0.5)
        return jnp.all(ok | ~scored)


def _gaussian_pulse(t, on, length, sigma):
    centre = on + 0.5 * (length - 1)
    return jnp.where(window(t, on, on + length), jnp.exp(-0.5 * ((t - centre) / sigma) ** 2), 0.0)


class TimeReproduction(AbstractTask):
    """Jarne's "pulse" task: a Gaussian-shaped input pulse (present or absent) is
    reproduced at the output `mem_gap` after it ends. Scored everywhere. Correct: trial
    MSE below `tolerance`. (Jarne also adds noise to the target; we do not, so the
    target is a function of the condition.)
    """

    name: ClassVar[str] = "time_reproduction"
    condition_keys: ClassVar[tuple[str, ...]] = ("present",)
    target_loss: ClassVar[float | None] = 1e-3
    dt: float = number(10.0)
    stim_on: float = number(300.0)
    pulse: float = number(200.0)
    width: float = number(120.0)
    mem_gap: float = number(200.0)
    duration: float = number(1500.0)
    input_noise: float = number(0.1)
    tolerance: float = number(5e-3)

    def __check_init__(self):
        if self.stim_on + 2 * self.pulse + self.mem_gap > self.duration:
            raise ValueError("`duration` must hold stim_on + 2 pulse + mem_gap.")

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    n_steps = property(lambda self: steps(self.duration, self.dt))

    def trial(self, key):
        present = jr.bernoulli(key, 0.5).astype(float)
        t = jnp.arange(self.n_steps)
        on = steps(self.stim_on, self.dt)
        length = steps(self.pulse, self.dt)
        sigma = self.width / self.dt
        out_on = on + length + steps(self.mem_gap, self.dt)
        u = present * _gaussian_pulse(t, on, length, sigma)[:, None]
        y = present * _gaussian_pulse(t, out_on, length, sigma)[:, None]
        mask = jnp.ones_like(y)
        info = dict(present=present, response_on=jnp.asarray(out_on),
                    response_off=jnp.asarray(out_on + length))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return masked_mse(z, y, mask) < self.tolerance


class FiniteOscillation(AbstractTask):
    """Jarne's finite-duration oscillation: a cue pulse (present or absent, smoothed
    with a Hann window) at `cue_on` starts `amplitude sin(2 pi cycles (t - start) /
    duration)` at `cue_on + delay`, which stops `stop_before` the end of the trial.
    Scored everywhere; without the cue the output stays 0. Correct: trial MSE below
    `tolerance`.
    """

    name: ClassVar[str] = "oscillation"
    condition_keys: ClassVar[tuple[str, ...]] = ("present",)
    target_loss: ClassVar[float | None] = 1e-3
    dt: float = number(10.0)
    cue_on: float = number(500.0)
    cue: float = number(200.0)
    delay: float = number(400.0)
    stop_before: float = number(200.0)
    duration: float = number(4000.0)
    cycles: float = number(12.0)
    amplitude: float = number(0.3)
    input_noise: float = number(0.1)
    tolerance: float = number(5e-3)

    def __check_init__(self):
        if self.cue_on + self.delay + self.stop_before >= self.duration:
            raise ValueError("`duration` must exceed cue_on + delay + stop_before.")

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    n_steps = property(lambda self: steps(self.duration, self.dt))

    def trial(self, key):
        present = jr.bernoulli(key, 0.5).astype(float)
        t = jnp.arange(self.n_steps)
        on = steps(self.cue_on, self.dt)
        length = steps(self.cue, self.dt)
        hann = jnp.sin(jnp.pi * (t - on + 0.5) / length) ** 2
        u = present * jnp.where(window(t, on, on + length), hann, 0.0)[:, None]
        start = on + steps(self.delay, self.dt)
        stop = self.n_steps - steps(self.stop_before, self.dt)
        phase = 2 * jnp.pi * self.cycles * (t - start) / self.n_steps
        y = present * jnp.where(window(t, start, stop), self.amplitude * jnp.sin(phase), 0.0)
        y = y[:, None]
        info = dict(present=present, response_on=jnp.asarray(start),
                    response_off=jnp.asarray(stop))
        return u, y, jnp.ones_like(y), info

    def trial_correct(self, z, y, mask, info):
        return masked_mse(z, y, mask) < self.tolerance

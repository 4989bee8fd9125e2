"""Sussillo & Barak (2013): the N-bit flip-flop and input-selected sine-wave generation."""

from typing import ClassVar

import jax.lax as lax
import jax.numpy as jnp
import jax.random as jr

from .base import AbstractTask, count, masked_mse, number, steps


class FlipFlop(AbstractTask):
    """N-bit flip-flop: each of `n_bits` channels receives +-1 pulses; output b holds
    the sign of the latest pulse on channel b.

    Time is cut into slots of `slot` ms. At the start of each slot every channel gets a
    pulse of `pulse` ms with probability `p` (random sign); the first slot always
    pulses, so every output has a defined target from the start (as FPF's
    `FlipFlopData`). The `grace` ms after a pulse onset are not scored on that channel.
    Correct: the output sign is right at every scored step on every channel.
    """

    name: ClassVar[str] = "flipflop"
    condition_keys: ClassVar[tuple[str, ...]] = ("n_flips",)
    target_loss: ClassVar[float | None] = 9e-3
    n_bits: int = count(3)
    dt: float = number(10.0)
    slot: float = number(200.0)
    pulse: float = number(50.0)
    n_slots: int = count(10)
    p: float = number(0.5)
    grace: float = number(100.0)
    input_noise: float = number(0.1)

    def __check_init__(self):
        if not 0 < self.p <= 1:
            raise ValueError(f"`p` must be in (0, 1], got {self.p}.")
        if self.pulse > self.slot or self.grace > self.slot:
            raise ValueError("`pulse` and `grace` must not exceed `slot`.")

    n_in = property(lambda self: self.n_bits)
    n_out = property(lambda self: self.n_bits)
    n_steps = property(lambda self: self.n_slots * steps(self.slot, self.dt))

    def trial(self, key):
        k_on, k_sign = jr.split(key)
        shape = (self.n_slots, self.n_bits)
        pulsed = jr.bernoulli(k_on, self.p, shape).at[0].set(True)
        signs = jnp.where(pulsed, jnp.where(jr.bernoulli(k_sign, 0.5, shape), 1.0, -1.0), 0.0)

        def hold(last, s):
            last = jnp.where(s != 0, s, last)
            return last, last

        _, held = lax.scan(hold, jnp.zeros(self.n_bits), signs)
        t = jnp.arange(self.n_steps)
        slot_steps = steps(self.slot, self.dt)
        k, phase = t // slot_steps, t % slot_steps
        in_pulse = (phase < steps(self.pulse, self.dt))[:, None]
        u = jnp.where(in_pulse, signs[k], 0.0)
        y = held[k]
        settling = (phase < steps(self.grace, self.dt))[:, None] & (signs[k] != 0)
        mask = (~settling).astype(float)
        flips = jnp.sum((held[1:] != held[:-1]).astype(float))
        info = dict(n_flips=flips, response_on=jnp.asarray(0),
                    response_off=jnp.asarray(self.n_steps))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return jnp.all((jnp.sign(z) == jnp.sign(y)) | (mask == 0))


class SineWave(AbstractTask):
    """Input-selected sine-wave generation (Sussillo & Barak 2013): a static input
    `j / n_freqs + 0.25` selects the output `sin(omega_j t)`, omega_j evenly spaced in
    [omega_min, omega_max] rad per `time_unit` ms (S&B: 51 frequencies in [0.1, 0.6]).
    The first `grace` ms are not scored. Correct: trial MSE below `tolerance`.
    """

    name: ClassVar[str] = "sine"
    condition_keys: ClassVar[tuple[str, ...]] = ("frequency",)
    target_loss: ClassVar[float | None] = 5e-2
    dt: float = number(10.0)
    n_freqs: int = count(51)
    omega_min: float = number(0.1)
    omega_max: float = number(0.6)
    time_unit: float = number(100.0)
    duration: float = number(3000.0)
    grace: float = number(0.0)
    input_noise: float = number(0.0)
    tolerance: float = number(0.05)

    n_in = property(lambda self: 1)
    n_out = property(lambda self: 1)
    n_steps = property(lambda self: steps(self.duration, self.dt))

    def trial(self, key):
        j = jr.randint(key, (), 0, self.n_freqs)
        frac = j / max(self.n_freqs - 1, 1)
        omega = self.omega_min + (self.omega_max - self.omega_min) * frac
        t_ms = self.dt * (jnp.arange(self.n_steps) + 1.0)
        u = jnp.full((self.n_steps, 1), j / self.n_freqs + 0.25)
        y = jnp.sin(omega * t_ms / self.time_unit)[:, None]
        mask = (t_ms > self.grace).astype(float)[:, None]
        info = dict(frequency=omega, response_on=jnp.asarray(0),
                    response_off=jnp.asarray(self.n_steps))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return masked_mse(z, y, mask) < self.tolerance

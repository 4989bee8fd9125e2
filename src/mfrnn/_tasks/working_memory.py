"""Working-memory decisions with a go cue: delayed match-to-sample and parametric
working memory (Romo et al. 1999).

As in `decision.py`: input 0 is fixation (off = go), the output is 0 while fixating
and +-1 in the decision period. The delay may be drawn per trial from
`[delay_min, delay_max]`; trials are then padded to the longest, and the padding is
neither input nor scored.
"""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr

from .base import (
    AbstractTask,
    decision_outputs,
    number,
    sign_of_mean_correct,
    steps,
    window,
)


def _delay_steps(key, delay_min, delay_max, dt):
    lo, hi = steps(delay_min, dt), steps(delay_max, dt)
    return jr.randint(key, (), lo, hi + 1)


def _check_delay(task):
    if task.delay_max < task.delay_min:
        raise ValueError(
            f"`delay_max` ({task.delay_max}) must be >= `delay_min` ({task.delay_min})."
        )


class DelayedMatchToSample(AbstractTask):
    """Delayed match-to-sample: a sample (A or B, one input channel each), a delay, a
    test (A or B); report match (+1) or non-match (-1) after the go cue.
    Periods: fixation, sample, delay, test, decision (neurogym `DelayMatchSample`
    timing, with the fixation input on until the decision as its go cue).
    """

    name: ClassVar[str] = "match_to_sample"
    condition_keys: ClassVar[tuple[str, ...]] = ("sample", "test")
    n_classes: ClassVar[int | None] = 3
    target_accuracy: ClassVar[float | None] = 0.9
    # An XOR of sample and test: at g = 0.9 tanh networks sit at the symmetric point
    # (output 0, chance); g = 1.5 gives the nonlinear mixing to learn it.
    initial_g: ClassVar[float] = 1.5
    dt: float = number(20.0)
    fixation: float = number(300.0)
    sample_duration: float = number(500.0)
    delay_min: float = number(1000.0)
    delay_max: float = number(1000.0)
    test: float = number(500.0)
    decision: float = number(300.0)
    input_noise: float = number(0.5)

    def __check_init__(self):
        _check_delay(self)

    n_in = property(lambda self: 3)
    n_out = property(lambda self: 1)

    @property
    def n_steps(self):
        return sum(steps(d, self.dt) for d in (self.fixation, self.sample_duration,
                                                self.delay_max, self.test, self.decision))

    def trial(self, key):
        k_s, k_t, k_d = jr.split(key, 3)
        sample = jr.randint(k_s, (), 0, 2)
        test = jr.randint(k_t, (), 0, 2)
        choice = jnp.where(sample == test, 1.0, -1.0)
        t = jnp.arange(self.n_steps)
        s_on = steps(self.fixation, self.dt)
        s_off = s_on + steps(self.sample_duration, self.dt)
        t_on = s_off + _delay_steps(k_d, self.delay_min, self.delay_max, self.dt)
        t_off = t_on + steps(self.test, self.dt)
        resp_off = t_off + steps(self.decision, self.dt)
        channel = jnp.arange(2)
        stim = (window(t, s_on, s_off)[:, None] & (channel == sample)[None]) | (
            window(t, t_on, t_off)[:, None] & (channel == test)[None])
        u = jnp.concatenate([(t < t_off)[:, None], stim], axis=-1).astype(float)
        y, mask, labels = decision_outputs(t, choice, t_off, t_off, resp_off)
        info = dict(sample=sample.astype(float), test=test.astype(float), choice=choice,
                    labels=labels, response_on=t_off, response_off=resp_off)
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return sign_of_mean_correct(z, info)


class ParametricWorkingMemory(AbstractTask):
    """Vibrotactile frequency comparison (Romo et al. 1999): f1, a delay, f2; report
    f1 > f2 (+1) or f1 < f2 (-1) after the go cue. The stimulus channel carries
    `(1 + (f - 10) / 24) / 2` during each stimulus (neurogym `DelayComparison`
    encoding), the pairs are Romo's (order randomised).
    """

    name: ClassVar[str] = "parametric_wm"
    condition_keys: ClassVar[tuple[str, ...]] = ("f1", "f2")
    n_classes: ClassVar[int | None] = 3
    target_accuracy: ClassVar[float | None] = 0.85
    dt: float = number(20.0)
    fixation: float = number(500.0)
    stimulus: float = number(500.0)
    delay_min: float = number(1000.0)
    delay_max: float = number(1000.0)
    decision: float = number(300.0)
    pairs: tuple[tuple[float, float], ...] = eqx.field(
        default=((18.0, 10.0), (22.0, 14.0), (26.0, 18.0), (30.0, 22.0), (34.0, 26.0)),
        static=True, converter=lambda pairs: tuple((float(a), float(b)) for a, b in pairs))
    input_noise: float = number(0.5)

    def __check_init__(self):
        _check_delay(self)
        if not self.pairs or any(a == b for a, b in self.pairs):
            raise ValueError(f"`pairs` must be non-empty with f1 != f2, got {self.pairs}.")

    n_in = property(lambda self: 2)
    n_out = property(lambda self: 1)

    @property
    def n_steps(self):
        return sum(steps(d, self.dt) for d in (self.fixation, self.stimulus, self.delay_max,
                                                self.stimulus, self.decision))

    def spec(self):
        out = super().spec()
        out["kwargs"]["pairs"] = [list(p) for p in self.pairs]
        return out

    def trial(self, key):
        k_p, k_o, k_d = jr.split(key, 3)
        pair = jnp.asarray(self.pairs)[jr.randint(k_p, (), 0, len(self.pairs))]
        pair = jnp.where(jr.bernoulli(k_o, 0.5), pair, pair[::-1])
        f1, f2 = pair[0], pair[1]
        choice = jnp.where(f1 > f2, 1.0, -1.0)
        t = jnp.arange(self.n_steps)
        dur = steps(self.stimulus, self.dt)
        s1 = steps(self.fixation, self.dt)
        s2 = s1 + dur + _delay_steps(k_d, self.delay_min, self.delay_max, self.dt)
        fix_off = s2 + dur
        resp_off = fix_off + steps(self.decision, self.dt)

        def encode(f):
            return 0.5 * (1.0 + (f - 10.0) / 24.0)

        stim = jnp.where(window(t, s1, s1 + dur), encode(f1),
                         jnp.where(window(t, s2, s2 + dur), encode(f2), 0.0))
        u = jnp.stack([(t < fix_off).astype(float), stim], axis=-1)
        y, mask, labels = decision_outputs(t, choice, fix_off, fix_off, resp_off)
        info = dict(f1=f1, f2=f2, choice=choice, labels=labels, response_on=fix_off,
                    response_off=resp_off)
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return sign_of_mean_correct(z, info)

"""Decision tasks with a go cue: perceptual decision making (Britten 1992, Roitman &
Shadlen 2002) and context-dependent decision making (Mante et al. 2013).

Input 0 is the fixation input: 1 until the decision period starts, 0 after; its
offset is the go cue (docs/guide/tasks.md: neurogym's ContextDecisionMaking lacks one). The
single output must stay at 0 while fixating and report the choice (+-1) in the
decision period; both are scored. Correct: the sign of the mean output over the
decision period equals the choice. Cross-entropy uses labels 0 (fixate), 1 (choice
-1), 2 (choice +1).
"""

from typing import ClassVar

import jax.numpy as jnp
import jax.random as jr

from .base import (
    AbstractTask,
    decision_outputs,
    floats,
    number,
    sign_of_mean_correct,
    steps,
    window,
)


def _signed_coherence(key, coherences):
    """A coherence (in %) from the list, with a random sign; the choice is its sign
    (random at coherence 0)."""
    k_c, k_s = jr.split(key)
    coh = jnp.asarray(coherences)[jr.randint(k_c, (), 0, len(coherences))]
    sign = jnp.where(jr.bernoulli(k_s, 0.5), 1.0, -1.0)
    return sign * coh, sign


class PerceptualDecision(AbstractTask):
    """Random-dots motion discrimination (Britten 1992; Roitman & Shadlen 2002).

    Inputs: fixation, and the motion evidence `coherence / 100` (signed; + means
    "right") during the stimulus period, plus white noise of `input_noise` (units
    x sqrt(ms)). Periods: fixation, stimulus, delay, decision. Coherences as in the
    monkey experiments (0, 3.2, ..., 51.2 %). `info["coherence"]` is signed.
    """

    name: ClassVar[str] = "perceptual_decision"
    condition_keys: ClassVar[tuple[str, ...]] = ("coherence",)
    n_classes: ClassVar[int | None] = 3
    target_accuracy: ClassVar[float | None] = 0.85
    evidence: ClassVar[tuple[str, str] | None] = ("coherence", "signed coherence (%)")
    dt: float = number(20.0)
    fixation: float = number(100.0)
    stimulus: float = number(800.0)
    delay: float = number(100.0)
    decision: float = number(300.0)
    coherences: tuple[float, ...] = floats((0.0, 3.2, 6.4, 12.8, 25.6, 51.2))
    input_noise: float = number(1.0)

    def __check_init__(self):
        if not self.coherences or any(c < 0 or c > 100 for c in self.coherences):
            raise ValueError(f"`coherences` must be in [0, 100] %, got {self.coherences}.")

    n_in = property(lambda self: 2)
    n_out = property(lambda self: 1)

    @property
    def n_steps(self):
        return sum(steps(d, self.dt) for d in
                   (self.fixation, self.stimulus, self.delay, self.decision))

    def trial(self, key):
        coh, choice = _signed_coherence(key, self.coherences)
        t = jnp.arange(self.n_steps)
        stim_on = steps(self.fixation, self.dt)
        stim_off = stim_on + steps(self.stimulus, self.dt)
        fix_off = stim_off + steps(self.delay, self.dt)
        resp_off = fix_off + steps(self.decision, self.dt)
        u = jnp.stack([(t < fix_off).astype(float),
                       jnp.where(window(t, stim_on, stim_off), coh / 100.0, 0.0)], axis=-1)
        y, mask, labels = decision_outputs(t, choice, fix_off, fix_off, resp_off)
        info = dict(coherence=coh, choice=choice, labels=labels,
                    response_on=jnp.asarray(fix_off), response_off=jnp.asarray(resp_off))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return sign_of_mean_correct(z, info)


class ContextDecision(AbstractTask):
    """Context-dependent decision making (Mante, Sussillo, Shenoy & Newsome 2013).

    Inputs: fixation (the go cue is its offset), two context cues (motion, colour; on
    from the end of the fixation-only period to the end of the trial), motion and
    colour evidence `coherence / 100` (signed) during the stimulus period, with white
    noise. The choice is the sign of the coherence in the cued modality; the other is
    ignored. Periods: fixation, context only, stimulus, delay, decision.
    """

    name: ClassVar[str] = "context_decision"
    condition_keys: ClassVar[tuple[str, ...]] = ("context", "coh_relevant", "coh_irrelevant")
    n_classes: ClassVar[int | None] = 3
    target_accuracy: ClassVar[float | None] = 0.9
    evidence: ClassVar[tuple[str, str] | None] = (
        "coherence", "signed coherence of the relevant input (%)")
    evidence_groups: ClassVar[tuple[str, tuple[str, ...]] | None] = (
        "context", ("motion context", "colour context"))
    dt: float = number(20.0)
    fixation: float = number(100.0)
    context: float = number(350.0)
    stimulus: float = number(800.0)
    delay: float = number(100.0)
    decision: float = number(300.0)
    coherences: tuple[float, ...] = floats((5.0, 15.0, 50.0))
    input_noise: float = number(1.0)

    def __check_init__(self):
        if not self.coherences or any(c <= 0 or c > 100 for c in self.coherences):
            raise ValueError(f"`coherences` must be in (0, 100] %, got {self.coherences}.")

    n_in = property(lambda self: 5)
    n_out = property(lambda self: 1)

    @property
    def n_steps(self):
        return sum(steps(d, self.dt) for d in (self.fixation, self.context, self.stimulus,
                                                self.delay, self.decision))

    def trial(self, key):
        k_ctx, k_m, k_c = jr.split(key, 3)
        context = jr.randint(k_ctx, (), 0, 2)
        coh_m, sign_m = _signed_coherence(k_m, self.coherences)
        coh_c, sign_c = _signed_coherence(k_c, self.coherences)
        choice = jnp.where(context == 0, sign_m, sign_c)
        t = jnp.arange(self.n_steps)
        ctx_on = steps(self.fixation, self.dt)
        stim_on = ctx_on + steps(self.context, self.dt)
        stim_off = stim_on + steps(self.stimulus, self.dt)
        fix_off = stim_off + steps(self.delay, self.dt)
        resp_off = fix_off + steps(self.decision, self.dt)
        cued = (t >= ctx_on).astype(float)
        stim = window(t, stim_on, stim_off)
        u = jnp.stack([
            (t < fix_off).astype(float),
            cued * (context == 0),
            cued * (context == 1),
            jnp.where(stim, coh_m / 100.0, 0.0),
            jnp.where(stim, coh_c / 100.0, 0.0),
        ], axis=-1)
        y, mask, labels = decision_outputs(t, choice, fix_off, fix_off, resp_off)
        relevant = jnp.where(context == 0, coh_m, coh_c)
        irrelevant = jnp.where(context == 0, coh_c, coh_m)
        info = dict(context=context.astype(float), coh_motion=coh_m, coh_colour=coh_c,
                    coh_relevant=relevant, coh_irrelevant=irrelevant, coherence=relevant,
                    congruent=(sign_m == sign_c).astype(float), choice=choice, labels=labels,
                    response_on=jnp.asarray(fix_off), response_off=jnp.asarray(resp_off))
        return u, y, mask, info

    def trial_correct(self, z, y, mask, info):
        return sign_of_mean_correct(z, info)

"""The fine-tuning learning rate: Keras' cosine decay to 2% of the peak over the planned steps,
times a linear warm-up over the first 100. The plan can shrink mid-run (`--time-budget`), so the
rate is computed for the plan as it stands at each step."""

from __future__ import annotations

WARMUP_STEPS = 100
FLOOR = 0.02  # the last step's rate, as a share of the peak


def learning_rate(peak: float, step: int, plan_steps: int) -> float:
    """The rate at full-phase step `step` (0-based) of a plan of `plan_steps` steps."""
    import keras

    cosine = keras.optimizers.schedules.CosineDecay(peak, decay_steps=max(1, plan_steps),
                                                    alpha=FLOOR)
    return float(cosine(step)) * min(1.0, (step + 1) / WARMUP_STEPS)

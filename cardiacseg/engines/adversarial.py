"""Adversarial data augmentation (AdvChain) as the iteration update of MONAI's ``SupervisedTrainer``.

Switched on by an overlay of the training bundle (``configs/adversarial.json``, which sets
``train#trainer#iteration_update``), not by another trainer class. Per batch (Chen et al., Medical Image
Analysis 2022, arXiv:2108.03429; its use against respiratory motion: ``cmrxmotion.txt`` section 2.4):

1. draw a random perturbation chain (:func:`cardiacseg.transforms.adversarial.default_chain`), seeded by
   the iteration;
2. with the network fixed, take ``steps`` of projected, normalised gradient ascent on the chain's
   parameters to maximise the inconsistency — mean squared error of the softmax probabilities — between
   the prediction on the perturbed image and the clean prediction moved by the chain's spatial part;
3. train the network on the supervised loss of the clean batch plus ``consistency_weight`` times the
   inconsistency on the found perturbation (the clean prediction as the target, without gradient).

The CMRxMotion authors also used a contour loss in the consistency term; here it is the MSE only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys

from cardiacseg.transforms.adversarial import AdversarialChain, default_chain

__all__ = ["AdversarialIteration", "inconsistency"]


def inconsistency(probs_perturbed: torch.Tensor, probs_reference: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two probability maps ``(B, K, H, W)``.

    Args:
        probs_perturbed: softmax output on the perturbed images.
        probs_reference: the clean softmax output, moved by the chain's spatial part.

    Returns:
        A scalar.

    Example:
        >>> float(inconsistency(torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)))
        1.0

    """
    return (probs_perturbed - probs_reference).pow(2).mean()


class AdversarialIteration:
    """A ``SupervisedTrainer`` iteration with AdvChain's inner maximisation and consistency loss.

    Args:
        chain_factory: builds the perturbation chain (default: :func:`default_chain` with ``strength``).
        steps: gradient-ascent steps of the inner maximisation (0: a random chain, no ascent).
        step_size: size of each normalised ascent step, in units of the parameters' bounds.
        consistency_weight: weight of the consistency term in the training loss.
        strength: scales every perturbation bound of the default chain.
        seed: base seed; iteration ``i`` draws its chain with ``seed + i`` (reproducible).

    Raises:
        ValueError: negative ``steps``, ``step_size`` or ``consistency_weight``.

    Example:
        >>> update = AdversarialIteration(steps=2)  # doctest: +SKIP
        >>> trainer = SupervisedTrainer(..., iteration_update=update)  # doctest: +SKIP

    """

    def __init__(
        self,
        chain_factory: Callable[[], AdversarialChain] | None = None,
        steps: int = 2,
        step_size: float = 0.5,
        consistency_weight: float = 1.0,
        strength: float = 1.0,
        seed: int = 0,
    ) -> None:
        if steps < 0 or step_size < 0 or consistency_weight < 0:
            raise ValueError(
                f"steps, step_size and consistency_weight must be >= 0, got {steps}, {step_size}, "
                f"{consistency_weight}"
            )
        self.chain_factory = chain_factory or (lambda: default_chain(strength))
        self.steps = steps
        self.step_size = step_size
        self.consistency_weight = consistency_weight
        self.seed = seed
        #: inconsistency before and after the ascent of the last batch (for logging and tests)
        self.last_gain: tuple[float, float] = (0.0, 0.0)

    def attack(
        self, network: torch.nn.Module, inputs: torch.Tensor, generator: torch.Generator | None = None
    ) -> AdversarialChain:
        """Find a perturbation chain that maximises the inconsistency on ``inputs`` (network fixed).

        Args:
            network: the segmentation network (logits ``(B, K, H, W)``).
            inputs: the image batch ``(B, C, H, W)``.
            generator: seeds the initial chain.

        Returns:
            The chain with the found parameters (no gradient attached). ``last_gain`` holds the
            inconsistency before and after the ascent.

        """
        chain = self.chain_factory().to(inputs.device)
        chain.reset(inputs, generator)
        params = chain.adversarial_parameters()
        was_training = network.training
        requires = [p.requires_grad for p in network.parameters()]
        for p in network.parameters():
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                clean = torch.softmax(network(inputs), dim=1)
            before = after = 0.0
            for step in range(self.steps + 1):
                value = inconsistency(torch.softmax(network(chain(inputs)), dim=1), chain.warp(clean))
                if step == 0:
                    before = float(value)
                after = float(value)
                if step == self.steps:
                    break
                grads = torch.autograd.grad(value, params, allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(params, grads, strict=True):
                        if g is not None:
                            p.add_(self.step_size * g / g.norm().clamp_min(1e-12))
                    chain.project()
            self.last_gain = (before, after)
        finally:
            for p, r in zip(network.parameters(), requires, strict=True):
                p.requires_grad_(r)
            network.train(was_training)
        for p in params:
            p.requires_grad_(False)
        return chain

    def __call__(self, engine: SupervisedTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:
        """Run one training iteration (the ``iteration_update`` of MONAI's ``SupervisedTrainer``).

        Args:
            engine: the trainer.
            batchdata: the batch (``image``, ``label``).

        Returns:
            ``engine.state.output``: image, label, pred (logits on the clean batch), loss, and
            ``loss_supervised``, ``loss_consistency``, ``adversarial_gain`` (inconsistency after minus
            before the ascent).

        Raises:
            ValueError: ``batchdata`` is None.

        """
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        inputs, targets = batch[0], batch[1]
        network = engine.network
        generator = torch.Generator().manual_seed(self.seed + int(engine.state.iteration))
        network.train()
        chain = self.attack(network, inputs, generator)
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        logits = engine.inferer(inputs, network)
        supervised = engine.loss_function(logits, targets).mean()
        with torch.no_grad():
            perturbed = chain(inputs)
            target_probs = chain.warp(torch.softmax(logits.detach(), dim=1))
        consistency = inconsistency(torch.softmax(network(perturbed), dim=1), target_probs)
        loss = supervised + self.consistency_weight * consistency
        loss.backward()
        engine.optimizer.step()
        before, after = self.last_gain
        output: dict[str, Any] = {
            Keys.IMAGE: inputs,
            Keys.LABEL: targets,
            Keys.PRED: logits,
            Keys.LOSS: loss.detach(),
            "loss_supervised": float(supervised),
            "loss_consistency": float(consistency),
            "adversarial_gain": after - before,
        }
        engine.state.output = output
        return output

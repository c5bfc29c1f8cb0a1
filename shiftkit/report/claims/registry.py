"""The claims of CLAIMS.md: each paper's statement and numbers (typed once, here: they are inputs)
and the module whose ``evaluate`` decides it from the runs. The decision rule printed in the report
is that module's docstring, so the rule that is documented is the rule that runs."""

from __future__ import annotations

import inspect
import re

from shiftkit.report.claims import (
    c1_fig1,
    c2_lr_multipliers,
    c3_init_scale,
    c4_deep_sigmoid,
    c5_noisy_bn,
    c6_grad_ics,
    c7_landscape,
    c8_syncbn,
)
from shiftkit.report.claims.base import Claim
from shiftkit.report.claims.prereg import C2_RULES_COMMIT, Preregistration

IOFFE = "Ioffe & Szegedy 2015"
SANTURKAR = "Santurkar et al. 2018"


def _rule(module) -> str:
    """The module docstring without its first paragraph (the claim's one-line summary), as Markdown:
    ``:data:`NAME``` becomes the constant's value in the module, so the printed rule states the
    threshold the code uses; other reST roles become code spans."""
    doc = inspect.getdoc(module) or ""
    doc = doc.split("\n\n", 1)[1] if "\n\n" in doc else doc
    doc = re.sub(r":data:`(\w+)`", lambda m: f"{getattr(module, m[1])!r}", doc)
    doc = re.sub(r":(?:mod|func|class|attr):`~?\.?([\w.]+)`", lambda m: f"`{m[1].rsplit('.', 1)[-1]}`", doc)
    return doc.replace("``", "`").replace(" -- ", " — ")


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "BN trains faster and holds a sigmoid input still", IOFFE, "mnist_fig1",
          "On MNIST (3 x 100 sigmoid, batch 60) BN reaches higher test accuracy sooner (Fig. 1a), and "
          "the 15/50/85th percentiles of a last-hidden-layer sigmoid input drift without BN and stay "
          "put with BN (Fig. 1b, c).",
          "Fig. 1 (50,000 steps): BN above no BN throughout; percentiles drift without BN, stable with BN "
          "(no number given)",
          _rule(c1_fig1), c1_fig1.evaluate, ("heatmap", "colorful")),
    Claim("C2", "BN allows higher learning rates", IOFFE, "lr_multipliers",
          "With BN the learning rate can be raised 5-30x and the target accuracy is reached in far fewer "
          "steps; without BN the 5x rate diverges.",
          "Inception 31.0e6 steps to 72.2%; BN-Baseline 13.3e6; BN-x5 2.1e6 (max 73.0%); BN-x30 2.7e6 "
          "(max 74.8%); no BN at 5x: diverged",
          _rule(c2_lr_multipliers), c2_lr_multipliers.evaluate, (), Preregistration(C2_RULES_COMMIT)),
    Claim("C3", "BN makes training robust to the init scale", IOFFE, "init_scale",
          "BN(Wu) = BN((aW)u): the weights' scale does not change the layer's output, so with BN all init "
          "scales train; without BN some stall or diverge.",
          "BN((aW)u) = BN(Wu) for any scalar a (Sec. 3.3); no number given",
          _rule(c3_init_scale), c3_init_scale.evaluate, ()),
    Claim("C4", "BN lets saturating networks train", IOFFE, "deep_sigmoid",
          "Inception with sigmoid and no BN never beat 1/1000 accuracy; with BN (BN-x5-Sigmoid) it "
          "reached 69.8%.",
          "sigmoid, no BN: < 0.1% (never above 1/1000); BN-x5-Sigmoid: 69.8% top-1",
          _rule(c4_deep_sigmoid), c4_deep_sigmoid.evaluate, ("heatmap", "colorful")),
    Claim("C5", "noisy BN trains although it shifts more", SANTURKAR, "noisy_bn",
          "BN followed by per-step random scale/shift noise trains about as well as BN although its "
          "activations shift more than those of the plain network; the same noise stops the plain "
          "network training (VGG, CIFAR-10, SGD, batch 128, LR 0.1).",
          "Fig. 2: noisy BN ≈ BN in training accuracy, larger shift than standard; noisy plain does not train",
          _rule(c5_noisy_bn), c5_noisy_bn.evaluate, ("heatmap",)),
    Claim("C6", "BN does not reduce gradient-based ICS", SANTURKAR, "grad_ics",
          "ICS measured as the change of a layer's gradient caused by the update of the layers below "
          "(||G - G'||, cos(G, G')) is similar or larger with BN, while BN trains better.",
          "Fig. 5 (VGG, DLN): ||G - G'|| similar or larger with BN; cos(G, G') similar or smaller",
          _rule(c6_grad_ics), c6_grad_ics.evaluate, ()),
    Claim("C7", "BN smooths the loss landscape", SANTURKAR, "landscape",
          "Along the gradient (step 0.5-4 x LR), the range of the loss, the gradient predictiveness and "
          "the effective beta-smoothness are all smaller with BN, by large factors early in training.",
          "Fig. 4 (VGG, CIFAR-10): all three smaller with BN, by large factors early in training",
          _rule(c7_landscape), c7_landscape.evaluate, ()),
    Claim("C8", "per-device BN needs >= 16 examples per device", "Goyal et al. 2017; Hoffer et al. 2017",
          "syncbn_vs_local",
          "Under data parallelism plain BN normalizes over the per-device batch n: n >= 16-32 is within "
          "about a point of synced BN; n <= 4 is clearly worse.",
          "per-device batch ≥ 16–32: within ≈ 1 point of synced; ≤ 4: clearly worse (no single number)",
          _rule(c8_syncbn), c8_syncbn.evaluate, ()),
)  # fmt: skip
"""The claims, in CLAIMS.md order."""

CLAIMS_BY_ID = {c.id: c for c in CLAIMS}
CLAIMS_BY_RECIPE = {c.recipe: c for c in CLAIMS}

"""Small models the monitor meets in the wild: a transformer, recurrent nets and odd modules.

nanoGPT-plain: each net is a readable ``nn.Module`` mapping a batch's inputs to logits;
:class:`Classifier` makes any of them a LightningModule; :data:`ZOO` maps a name to a
constructor. Datasets are tiny and made on the fly (:func:`tokens`, :func:`sequences`).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class TinyTransformer(nn.Module):
    """Token and position embeddings, one pre-norm block (attention, MLP, dropout), mean-pool head.

    The attention module is called with keyword arguments and returns a tuple
    ``(output, weights)``; the embeddings take integer ids.
    """

    def __init__(
        self,
        vocab: int = 16,
        d: int = 16,
        heads: int = 2,
        max_len: int = 32,
        classes: int = 2,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.tok(ids) + self.pos(positions)
        a = self.ln1(h)
        attended, _weights = self.attn(a, a, a, key_padding_mask=None)
        h = h + self.drop(attended)
        h = h + self.drop(self.mlp(self.ln2(h)))
        return self.head(self.ln_f(h).mean(1))


class RecurrentNet(nn.Module):
    """``nn.LSTM`` (or ``nn.GRU``) over a ``(batch, time, features)`` sequence, head on the last step."""

    def __init__(self, features: int = 4, hidden: int = 8, classes: int = 2, kind: str = "LSTM"):
        super().__init__()
        self.rnn = getattr(nn, kind)(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _state = self.rnn(x)  # out, (h_n, c_n) for an LSTM; out, h_n for a GRU
        return self.head(out[:, -1])


class CellLoop(nn.Module):
    """An ``nn.LSTMCell`` called once per time step: one module, ``T`` calls per forward."""

    def __init__(self, features: int = 4, hidden: int = 8, classes: int = 2):
        super().__init__()
        self.cell = nn.LSTMCell(features, hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = None
        for t in range(x.shape[1]):
            state = self.cell(x[:, t], state)
        return self.head(state[0])


class SharedLinear(nn.Module):
    """One ``nn.Linear`` applied twice (weight sharing): ``fc(tanh(fc(x)))`` then a head."""

    def __init__(self, features: int = 4, classes: int = 2):
        super().__init__()
        self.fc = nn.Linear(features, features)
        self.head = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(torch.tanh(self.fc(x))))


class DictIn(nn.Module):
    """Takes a dict ``{"mask": int tensor, "x": float tensor}``."""

    def __init__(self, features: int):
        super().__init__()
        self.fc = nn.Linear(features, features)

    def forward(self, inputs: dict) -> torch.Tensor:
        return self.fc(inputs["x"]) * inputs["mask"]


class KeywordOnly(nn.Module):
    """``forward(*, x, scale=None)``: its input arrives as keyword arguments only."""

    def __init__(self, features: int):
        super().__init__()
        self.fc = nn.Linear(features, features)

    def forward(self, *, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        return self.fc(x) * (1.0 if scale is None else scale)


class NoneOut(nn.Module):
    """Called with ``None`` (no tensor at all); returns ``None``."""

    def forward(self, value=None):
        return None


class OddInputs(nn.Module):
    """Modules whose inputs are not one float tensor: int ids, a dict, keywords only, ``None``."""

    def __init__(self, vocab: int = 16, features: int = 4, classes: int = 2):
        super().__init__()
        self.emb = nn.Embedding(vocab, features)
        self.dict_in = DictIn(features)
        self.kw_only = KeywordOnly(features)
        self.none = NoneOut()
        self.head = nn.Linear(features, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids).mean(1)
        h = self.dict_in({"mask": torch.ones_like(h, dtype=torch.long), "x": h})
        h = self.kw_only(x=h)
        self.none(None)
        return self.head(h)


class Containers(nn.Module):
    """``nn.Sequential``, ``nn.ModuleList`` and ``nn.ModuleDict`` holding the layers.

    The ReLU works in place: its input is overwritten right after its pre-hook saw it.
    """

    def __init__(self, features: int = 4, classes: int = 2):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(features, 6), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([nn.Linear(6, 6), nn.Linear(6, 6)])
        self.heads = nn.ModuleDict({"main": nn.Linear(6, classes), "aux": nn.Linear(6, classes)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.seq(x)
        for block in self.blocks:
            h = torch.relu(block(h))
        return self.heads["main"](h) + 0.1 * self.heads["aux"](h)


class Classifier(pl.LightningModule):
    """Any net of the zoo as a LightningModule: cross-entropy, plain SGD, no ``self.log``.

    ``loss_scale="global"`` sums the per-example losses and divides by ``global_batch``
    (so that an empty batch on one DDP rank contributes a zero loss, not NaN).
    """

    def __init__(self, net: nn.Module, lr: float = 0.1, global_batch: int | None = None):
        super().__init__()
        self.net, self.lr, self.global_batch = net, lr, global_batch

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.global_batch is None:
            return nn.functional.cross_entropy(self(x), y)
        return nn.functional.cross_entropy(self(x), y, reduction="sum") / self.global_batch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class Nested(pl.LightningModule):
    """A LightningModule whose backbone is another LightningModule."""

    def __init__(self, features: int = 4, classes: int = 2):
        super().__init__()
        self.backbone = Classifier(nn.Sequential(nn.Linear(features, 6), nn.Tanh()))
        self.head = nn.Linear(6, classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.backbone(x)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


ZOO = {
    "transformer": TinyTransformer,
    "lstm": lambda: RecurrentNet(kind="LSTM"),
    "gru": lambda: RecurrentNet(kind="GRU"),
    "cell_loop": CellLoop,
    "shared": SharedLinear,
    "odd_inputs": OddInputs,
    "containers": Containers,
}
"""Name -> constructor of a plain net (wrap it in :class:`Classifier`)."""


class Batches(Dataset):
    """A list of ready-made ``(x, y)`` batches; load it with ``batch_size=None``."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        return self.batches[i]


def batches_loader(batches) -> DataLoader:
    return DataLoader(Batches(list(batches)), batch_size=None, shuffle=False)


def tokens(sizes: list[tuple[int, int]], vocab: int = 16, seed: int = 0) -> DataLoader:
    """Integer-id batches of the given ``(batch, length)`` sizes; label: is token 0 present."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for b, t in sizes:
        ids = torch.randint(0, vocab, (b, t), generator=g)
        out.append((ids, (ids == 0).any(1).long()))
    return batches_loader(out)


def sequences(sizes: list[tuple[int, ...]], seed: int = 0) -> DataLoader:
    """Float batches of the given shapes (``(batch, time, features)``, images...); label: sign of the mean."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for shape in sizes:
        x = torch.randn(shape, generator=g)
        out.append((x, (x.flatten(1).mean(1) > 0).long()))
    return batches_loader(out)

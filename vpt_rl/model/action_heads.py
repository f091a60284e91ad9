"""VPT's policy head (joint buttons + camera categoricals) and distribution maths (docs/vpt_format.md §3.2, 6.7).

The distributions are handled as dicts of normalised log-probs {"buttons": (B,T,8641),
"camera": (B,T,121)}. Every quantity sums both heads, always including the camera head, even when
the chosen button combination has the camera meta-action off: that is how the official policy
was trained and evaluated (docs/vpt_format.md §6.7), so the KL to the prior is measured the same way.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

N_BUTTON_CLASSES = 8641  # 8640 joint combinations + "inventory" (docs/vpt_format.md §6.2)
N_CAMERA_CLASSES = 121  # 11 x 11 mu-law bins (docs/vpt_format.md §6.3)
HEAD_NAMES = ("camera", "buttons")  # official registration (and state-dict) order

Logprobs = dict[str, torch.Tensor]
Action = dict[str, torch.Tensor]


class CategoricalHead(nn.Module):
    """Linear -> log_softmax(logits / temperature): returns normalised log-probs, not logits.

    Fresh heads keep PyTorch's default nn.Linear init (the official reset is never called; docs/vpt_format.md §4).
    """

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features, n_classes)

    def forward(self, latent_btd: torch.Tensor, temperature: float) -> torch.Tensor:
        # float32 even inside an autocast region: the log-probs feed PPO ratios and KLs
        with torch.autocast(latent_btd.device.type, enabled=False):
            logits = self.linear_layer(latent_btd.float())
        # Temperature is applied inside the network (docs/vpt_format.md §3.2 step 9); float32 log_softmax.
        return F.log_softmax(logits.float() / temperature, dim=-1)


class DictActionHead(nn.ModuleDict):
    """The official `pi_head`: {"camera": CategoricalHead(121), "buttons": CategoricalHead(8641)}."""

    def __init__(self, in_features: int, temperature: float) -> None:
        super().__init__(
            {
                "camera": CategoricalHead(in_features, N_CAMERA_CLASSES),
                "buttons": CategoricalHead(in_features, N_BUTTON_CLASSES),
            }
        )
        self.temperature = temperature

    def forward(self, latent_btd: torch.Tensor) -> Logprobs:
        return {name: self[name](latent_btd, self.temperature) for name in ("buttons", "camera")}


def _sum_heads(terms: list[torch.Tensor]) -> torch.Tensor:
    """Per-head (B,T) terms summed in HEAD_NAMES order (the camera head always included)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def logprob(logprobs: Logprobs, action: Action) -> torch.Tensor:
    """log p(buttons) + log p(camera) of `action` {"buttons": (B,T), "camera": (B,T)} -> (B,T)."""
    terms = [logprobs[n].gather(-1, action[n].long().unsqueeze(-1)).squeeze(-1) for n in HEAD_NAMES]
    return _sum_heads(terms)


def entropy(logprobs: Logprobs) -> torch.Tensor:
    """Entropy of buttons + entropy of camera -> (B,T)."""
    terms = []
    for name in HEAD_NAMES:
        lp = logprobs[name]
        p = lp.exp()
        # p == 0 contributes 0 (0 * log 0 = 0; avoids 0 * (-inf) = nan).
        terms.append(-torch.where(p > 0, p * lp, torch.zeros_like(p)).sum(-1))
    return _sum_heads(terms)


def kl(logprobs_p: Logprobs, logprobs_q: Logprobs) -> torch.Tensor:
    """KL(p || q) = sum p (log p - log q), summed over both heads -> (B,T)."""
    terms = []
    for name in HEAD_NAMES:
        lp, lq = logprobs_p[name], logprobs_q[name]
        p = lp.exp()
        # p == 0 contributes 0 (avoids 0 * (-inf) = nan when a log-prob underflows).
        terms.append(torch.where(p > 0, p * (lp - lq), torch.zeros_like(p)).sum(-1))
    return _sum_heads(terms)


def draw_noise(shape_bt: tuple[int, int], device, generator: torch.Generator | None = None) -> Action:
    """The uniform draws `sample` makes for a (B,T) batch, in the same order (buttons, then camera):
    drawn once for all rows, they let rows be sampled in groups with the same result as one call."""
    return {
        name: torch.rand((*shape_bt, n), generator=generator, device=device)
        for name, n in (("buttons", N_BUTTON_CLASSES), ("camera", N_CAMERA_CLASSES))
    }


def sample(
    logprobs: Logprobs,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    noise: Action | None = None,
) -> Action:
    """Gumbel-max sampling per head (docs/vpt_format.md §6.7): u ~ U[0,1) with u == 1 replaced by 0.999, then
    argmax(logp - log(-log u)). Deterministic = argmax. Returns int64 (B,T) per head.

    ``noise``: the uniform draws u per head (from `draw_noise`) instead of drawing them here."""
    out: Action = {}
    for name in ("buttons", "camera"):
        lp = logprobs[name]
        if deterministic:
            out[name] = lp.argmax(-1)
            continue
        if noise is not None:
            u = noise[name].to(lp.dtype)
            if u.shape != lp.shape:
                raise ValueError(
                    f"sample: noise[{name!r}] has shape {tuple(u.shape)}, expected {tuple(lp.shape)}"
                )
        else:
            u = torch.rand(lp.shape, generator=generator, device=lp.device, dtype=lp.dtype)
        u = torch.where(u == 1.0, torch.full_like(u, 0.999), u)  # official guard (docs/vpt_format.md §6.7)
        out[name] = (lp - torch.log(-torch.log(u))).argmax(-1)
    return out

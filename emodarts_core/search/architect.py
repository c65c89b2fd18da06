"""The architect: the alpha half of DARTS' bi-level optimisation.

DARTS alternates two updates on every search step. The network weights ``w`` follow the training
loss (an ordinary SGD step, done by the search loop), and the architecture parameters ``alpha``
follow the *validation* loss, done here. Ideally alpha would minimise ``L_val(w*(alpha), alpha)``
where ``w*(alpha)`` is the weight optimum for that architecture. DARTS approximates ``w*`` by one
virtual SGD step:

    w' = w - xi * d_w,     d_w = mu * momentum_buffer + grad_w L_train(w, alpha) + lambda * w

(``mu`` the SGD momentum, ``lambda`` its weight decay, ``xi`` the current weight learning rate)
and differentiates through it. The chain rule gives

    grad_alpha = dL_val(w', alpha)/dalpha - xi * H,
    H = d^2 L_train(w, alpha) / (dalpha dw) . dw,      dw = dL_val(w', alpha)/dw'

and the Hessian-vector product ``H`` is approximated by a central finite difference

    H ~= (grad_alpha L_train(w + eps*dw) - grad_alpha L_train(w - eps*dw)) / (2 * eps),
    eps = 0.01 / ||dw||.

``search.order == "first"`` drops the unrolling (``xi = 0``): the alpha gradient is simply
``grad_alpha L_val(w, alpha)``.

Implementation notes

- **No network copy.** The original code builds a full deep copy of the supernet for ``w'``.
  Here the virtual step is applied to the network's own parameters in place, and the exact values
  of ``w`` are copied back afterwards (a bitwise restore, not a subtraction). Peak extra memory is
  three weight-sized buffers (the saved ``w``, ``dw`` and the transient training gradient), not a
  second network with its activations.
- **The architect only moves alpha.** Weights, buffers (BatchNorm running statistics, which the
  extra forward passes would otherwise update) and the weights' ``.grad`` fields are left exactly
  as they were.
- **One dropout mask per step.** The three training-loss evaluations (at ``w``, ``w+`` and ``w-``)
  replay the same random-number state, so a network with dropout sees the same mask in each. The
  finite difference then measures the change due to ``eps*dw`` alone; with different masks it
  would be dominated by mask noise divided by ``2*eps``. Afterwards the generator continues as if
  only the two distinct forward passes (training and validation) had drawn from it. (Limit: on
  CUDA, cuDNN draws the *inter-layer* dropout of stacked LSTM/RNN layers from its own internal
  state, which torch's generators do not control, so those masks are not replayed.)
- **Alpha-only passes do not track the weights.** The validation pass of the first order and
  the two finite-difference passes need gradients for alpha only, so they run with the weights'
  ``requires_grad`` switched off (:func:`_frozen`, restored afterwards): no weight gradient is
  computed or stored for them, even inside nodes that compute their own backward
  (:mod:`emodarts_core.fast.branches`), which cannot see which gradients the caller asked for.
- The virtual step reads the momentum buffer, momentum, dampening, Nesterov flag and weight decay
  from ``w_optimizer`` itself, so it predicts the step that optimiser would really take (gradient
  clipping, applied by the search loop, is not part of the prediction, as in DARTS).

The architect works with any module that exposes ``weights()``, ``alphas()`` and
``loss(x, y)``; the search network (:mod:`emodarts_core.nas.supernet`) is one.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence

import torch
from torch import Tensor, nn

from emodarts_core.config import SearchConfig
from emodarts_core.nas.relaxation import beta_decay_gradient

__all__ = ["Architect", "SearchableNet"]


class SearchableNet(Protocol):
    """What the architect needs from a network."""

    def weights(self) -> Sequence[nn.Parameter]: ...

    def alphas(self) -> Sequence[nn.Parameter]: ...

    def loss(self, x: Tensor, y: Tensor) -> Tensor: ...


@dataclass
class _RngSnapshot:
    """The torch CPU generator state, and every CUDA generator's if CUDA is in use."""

    cpu: Tensor
    cuda: list[Tensor] | None

    @classmethod
    def capture(cls) -> "_RngSnapshot":
        cuda = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = torch.cuda.get_rng_state_all()
        return cls(cpu=torch.get_rng_state(), cuda=cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def _grads(loss: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """``d loss / d params`` without touching ``.grad``; unused parameters get zeros."""
    grads = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


@contextmanager
def _frozen(params: Sequence[Tensor]) -> Iterator[None]:
    """``requires_grad`` off for ``params`` inside the block, restored on leaving it."""
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


def _global_norm(tensors: Sequence[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


class Architect:
    """Alpha updates for a DARTS search.

    Args:
        net: the search network (anything with ``weights()``, ``alphas()`` and ``loss(x, y)``).
        search: the search config; uses ``order`` ("first" or "second"), ``alpha_lr``,
            ``alpha_betas`` and ``alpha_weight_decay``.

    Attributes:
        optimizer: the Adam optimiser over ``net.alphas()``; its state belongs in checkpoints
            (see :meth:`state_dict`).
        last_valid_loss: the validation loss of the latest :meth:`step`.
    """

    def __init__(self, net: SearchableNet, search: SearchConfig) -> None:
        for name in ("weights", "alphas", "loss"):
            if not callable(getattr(net, name, None)):
                raise TypeError(f"Architect: net ({type(net).__name__}) has no method {name}()")
        if search.order not in ("first", "second"):
            raise ValueError(f"Architect: search.order must be 'first' or 'second', got {search.order!r}")
        alphas = list(net.alphas())
        if not alphas:
            raise ValueError("Architect: net.alphas() is empty; there is nothing to search")
        alpha_ids = {id(a) for a in alphas}
        if any(id(w) in alpha_ids for w in net.weights()):
            raise ValueError("Architect: net.weights() must not include the alphas")
        self.net = net
        self.search = search
        self.order = search.order
        self.optimizer = torch.optim.Adam(
            alphas, lr=search.alpha_lr, betas=tuple(search.alpha_betas),
            weight_decay=search.alpha_weight_decay,
        )
        self.last_valid_loss: float | None = None

    # ------------------------------------------------------------------------------------------
    def step(self, x_train: Tensor, y_train: Tensor, x_valid: Tensor, y_valid: Tensor,
             w_lr: float, w_optimizer: torch.optim.SGD, chunks: int = 1,
             beta_weight: float = 0.0) -> float:
        """One alpha update; returns the validation loss the gradient was taken from.

        For ``order == "first"`` that is ``L_val(w, alpha)``; for ``"second"`` it is the loss at
        the unrolled weights, ``L_val(w', alpha)``. ``w_lr`` is the weight learning rate currently
        in use (``xi``); ``w_optimizer`` is the weights' SGD optimiser, read but never stepped.
        ``chunks`` > 1 splits the validation batch into that many pieces, each through the
        network on its own, and averages their gradients by size (gradient accumulation: a large
        alpha batch at the activation memory of one piece). ``beta_weight`` adds beta-DARTS'
        regulariser ``beta_weight * mean_edges logsumexp(alpha)`` per alpha matrix.
        """
        grads, loss = self.alpha_gradients(x_train, y_train, x_valid, y_valid, w_lr, w_optimizer,
                                           chunks)
        alphas = self.optimizer.param_groups[0]["params"]
        if beta_weight > 0:
            grads = [g + beta_weight * beta_decay_gradient(a) for g, a in zip(grads, alphas)]
        self.optimizer.zero_grad(set_to_none=True)
        for alpha, grad in zip(alphas, grads):
            alpha.grad = grad.detach()
        self.optimizer.step()
        self.last_valid_loss = loss
        return loss

    def alpha_gradients(self, x_train: Tensor, y_train: Tensor, x_valid: Tensor, y_valid: Tensor,
                        w_lr: float, w_optimizer: torch.optim.Optimizer | None,
                        chunks: int = 1) -> tuple[list[Tensor], float]:
        """The alpha gradient :meth:`step` would apply (one tensor per alpha; without the
        beta-DARTS term), and the loss.

        Nothing is updated; weights, buffers and generator states are restored on return.
        """
        if chunks < 1:
            raise ValueError(f"Architect.step: chunks must be >= 1, got {chunks}")
        pieces = list(zip(x_valid.tensor_split(chunks), y_valid.tensor_split(chunks)))
        pieces = [(x, y) for x, y in pieces if len(y)]
        if self.order == "first":
            return self._first_order(pieces)
        if w_lr < 0:
            raise ValueError(f"Architect.step: w_lr must be >= 0, got {w_lr}")
        if w_optimizer is None:
            raise ValueError("Architect.step: second order needs the weights' optimiser (w_optimizer)")
        return self._second_order(x_train, y_train, pieces, float(w_lr), w_optimizer)

    # ------------------------------------------------------------------------------------------
    def _valid_gradients(self, pieces: list[tuple[Tensor, Tensor]], params: list[Tensor]
                         ) -> tuple[list[Tensor], Tensor]:
        """Size-weighted mean over the validation pieces of the loss's gradients and the loss."""
        n = sum(len(y) for _, y in pieces)
        total: list[Tensor] | None = None
        loss_sum = torch.zeros(())
        for x, y in pieces:
            loss = self.net.loss(x, y)
            share = len(y) / n
            grads = [g * share for g in _grads(loss, params)] if len(pieces) > 1 \
                else _grads(loss, params)
            total = grads if total is None else [t + g for t, g in zip(total, grads)]
            loss_sum = loss_sum + loss.detach().float().cpu() * share
        assert total is not None
        return total, loss_sum

    def _first_order(self, pieces: list[tuple[Tensor, Tensor]]) -> tuple[list[Tensor], float]:
        buffers = [b.detach().clone() for b in self._buffers()]
        try:
            with _frozen(list(self.net.weights())):
                grads, loss = self._valid_gradients(pieces, list(self.net.alphas()))
        finally:
            self._restore_buffers(buffers)
        return grads, float(loss)

    def _second_order(self, x_train: Tensor, y_train: Tensor, pieces: list[tuple[Tensor, Tensor]],
                      xi: float, w_optimizer: torch.optim.Optimizer) -> tuple[list[Tensor], float]:
        weights = list(self.net.weights())
        alphas = list(self.net.alphas())
        coeffs, extras = self._sgd_terms(weights, w_optimizer)
        saved_w = [w.detach().clone() for w in weights]
        saved_b = [b.detach().clone() for b in self._buffers()]
        rng_train = _RngSnapshot.capture()
        try:
            # (1) virtual step w' = w - xi * (SGD direction), applied in place.
            g_train = _grads(self.net.loss(x_train, y_train), weights)
            with torch.no_grad():
                for w, g, c, extra in zip(weights, g_train, coeffs, extras):
                    direction = c * (g + extra["wd"] * w)
                    if extra["buf"] is not None:     # carry = scale * momentum buffer, formed
                        direction = direction + extra["scale"] * extra["buf"]   # per tensor
                    w.sub_(direction, alpha=xi)
            del g_train

            # (2) gradients of the validation loss at w' (averaged over the pieces: the
            # finite difference below is linear in dw, so one product serves them all).
            grads, loss_val = self._valid_gradients(pieces, alphas + weights)
            rng_after = _RngSnapshot.capture()
            d_alpha, dw = grads[: len(alphas)], grads[len(alphas):]
            del grads

            # (3) finite-difference Hessian-vector product around the *original* w.
            norm = float(_global_norm(dw)) if dw else 0.0
            if xi > 0 and norm > 0:
                eps = 0.01 / norm
                grad_pos = self._train_alpha_grad(weights, saved_w, dw, coeffs, eps, rng_train,
                                                  x_train, y_train, alphas)
                grad_neg = self._train_alpha_grad(weights, saved_w, dw, coeffs, -eps, rng_train,
                                                  x_train, y_train, alphas)
                # The correct divisor is (2 * eps). pt.darts (and the emoDARTS fork) write
                # `(p - n) / 2. * eps`, which multiplies by eps / 2 and shrinks the second-order
                # term by eps**2 (khanrc/pt.darts#43; fixed in microsoft/nni#3058).
                d_alpha = [da - xi * (gp - gn) / (2.0 * eps)
                           for da, gp, gn in zip(d_alpha, grad_pos, grad_neg)]
            rng_after.restore()
        finally:
            with torch.no_grad():
                for w, saved in zip(weights, saved_w):
                    w.copy_(saved)
            self._restore_buffers(saved_b)
        return [d.detach() for d in d_alpha], float(loss_val)

    def _train_alpha_grad(self, weights: list[Tensor], saved_w: list[Tensor], dw: list[Tensor],
                          coeffs: list[float], step: float, rng: _RngSnapshot,
                          x_train: Tensor, y_train: Tensor, alphas: list[Tensor]) -> list[Tensor]:
        """grad_alpha L_train at w + step * c * dw (same dropout mask as the virtual step)."""
        with torch.no_grad():
            for w, saved, d, c in zip(weights, saved_w, dw, coeffs):
                w.copy_(saved).add_(d, alpha=step * c)
        rng.restore()
        with _frozen(weights):
            return _grads(self.net.loss(x_train, y_train), alphas)

    @staticmethod
    def _sgd_terms(weights: list[Tensor], opt: torch.optim.Optimizer
                   ) -> tuple[list[float], list[dict[str, Any]]]:
        """Per weight: the coefficient ``c`` of the fresh gradient in the SGD update direction and
        the alpha-independent rest, so that direction = c * (grad + wd * w) + carry, with
        carry = scale * buf. The carry is not materialised here (that would be one more
        weight-sized copy at the memory peak of the unrolled step): the virtual step forms it
        one tensor at a time.

        With torch's SGD (momentum mu, dampening d, no Nesterov) and an existing momentum buffer b
        the direction is ``mu * b + (1 - d) * (grad + wd * w)``; before the first step (no buffer)
        it is ``grad + wd * w``. Nesterov uses ``(1 + mu (1 - d))`` and ``mu**2 * b``.
        """
        group_of: dict[int, dict[str, Any]] = {}
        for group in opt.param_groups:
            for p in group["params"]:
                group_of[id(p)] = group
        coeffs: list[float] = []
        extras: list[dict[str, Any]] = []
        for w in weights:
            group = group_of.get(id(w))
            if group is None:
                raise ValueError("Architect.step: a tensor of net.weights() is not in w_optimizer")
            mu = float(group.get("momentum", 0.0))
            damp = float(group.get("dampening", 0.0))
            nesterov = bool(group.get("nesterov", False))
            wd = float(group.get("weight_decay", 0.0))
            buf = opt.state.get(w, {}).get("momentum_buffer") if mu != 0 else None
            if buf is None:
                c, scale = ((1.0 + mu) if (nesterov and mu != 0) else 1.0), 0.0
            elif nesterov:
                c, scale = 1.0 + mu * (1.0 - damp), mu * mu
            else:
                c, scale = 1.0 - damp, mu
            coeffs.append(c)
            extras.append({"wd": wd, "scale": scale, "buf": buf})
        return coeffs, extras

    # ------------------------------------------------------------------------------------------
    def _buffers(self) -> list[Tensor]:
        buffers = getattr(self.net, "buffers", None)
        return list(buffers()) if callable(buffers) else []

    def _restore_buffers(self, saved: list[Tensor]) -> None:
        with torch.no_grad():
            for b, s in zip(self._buffers(), saved):
                b.copy_(s)

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state: the alpha optimiser (the alphas themselves live in the net)."""
        return {"order": self.order, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (for example from ``torch.load(weights_only=True)``)."""
        if "optimizer" not in state:
            raise ValueError("Architect.load_state_dict: state has no 'optimizer' entry")
        if state.get("order", self.order) != self.order:
            raise ValueError(f"Architect.load_state_dict: checkpoint is {state['order']}-order, "
                             f"this architect is {self.order}-order")
        self.optimizer.load_state_dict(state["optimizer"])

"""Many recurrent networks trained at once, as one batched model (chapter 5).

``recurrent.train`` trains one network; at 32 hidden units a training step is a few milliseconds
of framework overhead per time step and almost no arithmetic. ``train_many(configs, seeds)``
trains M networks of the same shape (kind, sequence length, hidden units, steps, batch) as one
model whose weights have a leading "model" axis: the recurrent cell is written out with batched
matrix products (``torch.baddbmm``), one per time step for all M networks, each reading its own
sequences.

Each network starts from exactly the weights ``recurrent.train`` would give it (it is built by
``Config.network()`` with the same seed and copied in) and sees the same sequences, so
the two agree to float rounding. The optimiser (Adam or plain SGD), the learning rate, gradient
clipping (by each network's own gradient norm), the vanilla RNN's nonlinearity and the
initialisation may differ from network to network. A network whose loss stops being finite is
scored as it is, as ``recurrent.train`` scores it, and leaves the batch.

A chapter hands its experiments to :func:`train_all`: configs times seeds, grouped by shape into
batched models and trained on worker processes, costliest first.
"""

from __future__ import annotations

from ._optional import require

require("torch", __name__)   # first: without torch, a message that says what to install

import copy
import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from . import checks
from .recurrent import (BASELINE_MSE, Config, Run, adding_problem, assemble_adding_problem,
                        draw_adding_problem)
from .runner import default_workers, in_given_order, runs_of_equal, shared_workers
from .torchutil import as_device, seed_all

Array = np.ndarray
SHAPE_FIELDS = ("kind", "length", "hidden", "steps", "batch")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8          # torch.optim.Adam's defaults
CLIP_EPS = 1e-6                                    # torch.nn.utils.clip_grads_with_norm_'s
TEST_SEQUENCES, GRADIENT_SEQUENCES, TEST_SEED = 2000, 500, 10 ** 6   # as recurrent.train


def shape_of(config: Config) -> tuple:
    """What networks trained together must share: (kind, length, hidden, steps, batch)."""
    checks.instance(config, "config", Config, "a recurrent.Config")
    return tuple(getattr(config, f) for f in SHAPE_FIELDS)


class Stack:
    """M recurrent networks of one kind and size as batched tensors: input weights (M, 2, G H),
    recurrent weights (M, H, G H) (G gates: 1 for the RNN, 4 for the LSTM, 3 for the GRU, in
    PyTorch's order), biases (M, 1, G H) and a linear read-out (M, H, 1). ``networks`` are
    ``recurrent.Recurrent`` modules whose weights are copied in."""

    def __init__(self, networks: Sequence[torch.nn.Module], nonlinearities: Sequence[str],
                 on: torch.device) -> None:
        self.kind = networks[0].kind
        self.hidden = networks[0].rnn.hidden_size
        grab = lambda f: torch.stack([f(n).detach().float() for n in networks]).to(on)  # noqa: E731
        self.W_ih = grab(lambda n: n.rnn.weight_ih_l0.T)
        self.W_hh = grab(lambda n: n.rnn.weight_hh_l0.T)
        self.b_ih = grab(lambda n: n.rnn.bias_ih_l0).unsqueeze(1)
        self.b_hh = grab(lambda n: n.rnn.bias_hh_l0).unsqueeze(1)
        self.W_out = grab(lambda n: n.readout.weight.T)
        self.b_out = grab(lambda n: n.readout.bias).unsqueeze(1)
        self.nonlinearities = list(nonlinearities)
        self._settle()

    def _settle(self) -> None:
        self.M = len(self.nonlinearities)
        self.runs = runs_of_equal(self.nonlinearities)     # (nonlinearity, first model, last model + 1)
        if len({a for a, _, _ in self.runs}) != len(self.runs):
            raise ValueError("networks that share a nonlinearity must be next to each other")

    def parameters(self) -> list[torch.Tensor]:
        return [self.W_ih, self.W_hh, self.b_ih, self.b_hh, self.W_out, self.b_out]

    def set_parameters(self, params: Sequence[torch.Tensor]) -> None:
        self.W_ih, self.W_hh, self.b_ih, self.b_hh, self.W_out, self.b_out = params

    def select(self, rows: Sequence[int]) -> "Stack":
        """A stack of the networks ``rows`` (copies, no gradients)."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self.W_ih.device)
        new = copy.copy(self)
        new.set_parameters([p.detach().index_select(0, index) for p in self.parameters()])
        new.nonlinearities = [self.nonlinearities[i] for i in rows]
        new._settle()
        return new

    def _act(self, z: torch.Tensor) -> torch.Tensor:
        f = {"tanh": torch.tanh, "relu": torch.relu}
        if len(self.runs) == 1:
            return f[self.runs[0][0]](z)
        return torch.cat([f[name](z[i:j]) for name, i, j in self.runs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions (M, n) for sequences x: (M, n, T, 2), one set per network, or (n, T, 2), shared."""
        if x.dim() == 3:
            x = x.expand(self.M, *x.shape)
        M, n, T, _ = x.shape
        if self.kind == "lstm":
            return self._lstm_per_network(x)
        # the input's contribution at every step and gate at once: (M, T, n, G, H), a view of (M, n, T, G, H)
        G, H = GATES[self.kind], self.hidden
        xw = torch.baddbmm(self.b_ih, x.reshape(M, n * T, 2), self.W_ih).view(M, n, T, G, H).transpose(1, 2)
        relu = torch.tensor([name == "relu" for name in self.nonlinearities], device=x.device).view(-1, 1, 1)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (xw, self.W_hh, self.b_hh)):
            h = _Unrolled.apply(xw, self.W_hh, self.b_hh, self.kind, relu)
        else:                                   # scoring: the same recurrence, without what backward keeps
            h = _recur(None, xw, self.W_hh, self.b_hh, self.kind, relu)
        return torch.baddbmm(self.b_out, h, self.W_out).squeeze(-1)

    def _lstm_per_network(self, x: torch.Tensor) -> torch.Tensor:
        """The LSTMs one by one, each through PyTorch's fused LSTM (oneDNN's on a CPU), which runs a
        whole sequence faster than any batched cell written in Python."""
        M, n, T, _ = x.shape
        zeros = x.new_zeros(1, n, self.hidden)
        last = []
        for m in range(M):
            weights = [self.W_ih[m].T.contiguous(), self.W_hh[m].T.contiguous(), self.b_ih[m, 0],
                       self.b_hh[m, 0]]
            out, _, _ = torch.lstm(x[m], (zeros, zeros), weights, True, 1, 0.0, True, False, True)
            last.append(out[:, -1])
        return torch.baddbmm(self.b_out, torch.stack(last), self.W_out).squeeze(-1)

    def forward_autograd(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` written with autograd through every time step: slower, and the reference
        that ``_Unrolled``'s hand-written backward pass is tested against."""
        if x.dim() == 3:
            x = x.expand(self.M, *x.shape)
        M, n, T, _ = x.shape
        H = self.hidden
        xw = torch.baddbmm(self.b_ih, x.reshape(M, n * T, 2), self.W_ih).view(M, n, T, -1).unbind(2)
        h = x.new_zeros(M, n, H)
        if self.kind == "rnn":
            for t in range(T):
                h = self._act(torch.baddbmm(xw[t], h, self.W_hh) + self.b_hh)
        elif self.kind == "lstm":
            c = x.new_zeros(M, n, H)
            for t in range(T):                            # gates in PyTorch's order: i, f, g, o
                i_f, g, o = (torch.baddbmm(self.b_hh, h, self.W_hh) + xw[t]).split([2 * H, H, H], dim=-1)
                i, f = torch.sigmoid(i_f).chunk(2, dim=-1)
                c = f * c + i * torch.tanh(g)             # the cell state: c_t = f_t c_(t-1) + i_t g_t
                h = torch.sigmoid(o) * torch.tanh(c)
        else:                                            # GRU, gates r, z, n
            for t in range(T):
                h_rz, h_n = torch.baddbmm(self.b_hh, h, self.W_hh).split([2 * H, H], dim=-1)
                x_rz, x_n = xw[t].split([2 * H, H], dim=-1)
                r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=-1)
                n_t = torch.tanh(x_n + r * h_n)
                h = (1 - z) * n_t + z * h
        return torch.baddbmm(self.b_out, h, self.W_out).squeeze(-1)

    def mse(self, x: torch.Tensor, y: torch.Tensor) -> Array:
        """Each network's mean squared error on shared sequences (n, T, 2) and targets (n,)."""
        with torch.no_grad():
            return ((self.forward(x) - y) ** 2).mean(1).double().cpu().numpy()

    def input_gradients(self, x: torch.Tensor, y: torch.Tensor) -> Array:
        """``recurrent.input_gradients`` for every network: (M, T), on shared sequences."""
        xs = x.expand(self.M, *x.shape).clone().requires_grad_(True)
        params = [p.detach() for p in self.parameters()]
        saved = self.parameters()
        self.set_parameters(params)
        try:
            loss = ((self.forward(xs) - y) ** 2).sum()
            (grad,) = torch.autograd.grad(loss, xs)
        finally:
            self.set_parameters(saved)
        return grad.norm(dim=-1).mean(dim=1).double().cpu().numpy()


def _blocks(relu: torch.Tensor) -> list[tuple[bool, int, int]]:
    """The runs of consecutive networks that share a nonlinearity: (is ReLU, first, last + 1)."""
    return runs_of_equal([bool(v) for v in relu.view(-1).tolist()])


class _Unrolled(torch.autograd.Function):
    """The recurrence of the vanilla RNN or the GRU over all T steps for M networks at once, with
    the backward pass through time written out by hand: a few batched operations per step,
    instead of autograd's graph of a dozen nodes per step on slices of the gates. The gates are
    kept gate-major, (G, M, n, H), so that each gate is one block. (The LSTM trains through
    PyTorch's fused ``torch.lstm``, see ``Stack._lstm_per_network``.)

    Inputs: ``xw`` (M, T, n, G, H), the input's contribution x W_ih + b_ih at every step and
    gate; ``W_hh`` (M, H, G H); ``b_hh`` (M, 1, G H) (G gates in PyTorch's order: 1 for the RNN;
    r, z, n for the GRU); ``relu`` (M, 1, 1), which vanilla RNNs use ReLU rather than tanh.
    Output: the last hidden state, (M, n, H). The equations (PyTorch's):

    - RNN:  h_t = phi(a_t), a_t = xw_t + h_(t-1) W_hh + b_hh
    - GRU:  (r, z) = sigma(xw_rz + (h W_hh + b_hh)_rz); n = tanh(xw_n + r (h W_hh + b_hh)_n);
            h_t = (1 - z) n + z h_(t-1)

    The gradient for ``xw`` comes back laid out as ``xw`` is in memory, so that autograd passes it
    on without a copy; the hidden states are kept model first, (M, T + 1, n, H), so that the
    weights' gradient, summed over all steps, is one product over a view of them.
    """

    @staticmethod
    def forward(ctx, xw, W_hh, b_hh, kind, relu):
        return _recur(ctx, xw, W_hh, b_hh, kind, relu)

    @staticmethod
    def backward(ctx, grad_h):
        return _recur_backward(ctx, grad_h)


def _recur(ctx: Any, xw: torch.Tensor, W_hh: torch.Tensor, b_hh: torch.Tensor, kind: str,
           relu: torch.Tensor) -> torch.Tensor:
    """``_Unrolled``'s forward pass. With ``ctx`` None (no gradient wanted: scoring on the test
    sequences) it keeps only what the next step needs (two hidden states rather than T + 1) and
    computes the same numbers. Every step's tensors are views taken once, before the loop."""
    if kind not in ("rnn", "gru"):
        raise ValueError(f"kind must be 'rnn' or 'gru' (the LSTM trains through torch.lstm), got {kind!r}")
    keep = ctx is not None
    M, T, n, G, H = xw.shape
    hs = xw.new_empty(M, T + 1 if keep else 2, n, H)                        # h_0 ... h_T
    hs[:, 0].zero_()
    h = _steps(hs, T + 1, keep)                                             # h[t]: a view of h_t
    if kind == "rnn":
        x_b = (xw[:, :, :, 0] + b_hh.view(M, 1, 1, H)).unbind(1)
        blocks = _blocks(relu)
        for t in range(T):
            a = torch.baddbmm(x_b[t], h[t], W_hh)
            for is_relu, i, j in blocks:              # each block written straight into h_(t+1)
                a_ij, h_ij = (a, h[t + 1]) if len(blocks) == 1 else (a[i:j], h[t + 1][i:j])
                if is_relu:
                    torch.clamp(a_ij, min=0, out=h_ij)
                else:                 # tanh(a) = 2 sigma(2a) - 1: within 2e-7 of tanh, 2-3x faster on a CPU
                    torch.sigmoid(a_ij.mul_(2), out=h_ij).mul_(2).sub_(1)
        if ctx is not None:
            ctx.blocks = blocks
            ctx.save_for_backward(hs, W_hh)
    else:
        # the gates gate-major, (G, M, n, H), so that one batched product serves the three
        Wg = W_hh.view(M, H, G, H).permute(2, 0, 1, 3).reshape(G * M, H, H)     # one (H, H) block per gate
        bg_flat = b_hh.view(M, 1, G, H).permute(2, 0, 1, 3).reshape(G * M, 1, H)
        gates = xw.new_empty(T if keep else 1, G, M, n, H)                  # r, z, n
        hidden = xw.new_empty(T if keep else 1, G, M, n, H)                 # h W_hh + b_hh, gate by gate
        x_rz, x_n = xw[:, :, :, :2].permute(1, 3, 0, 2, 4).unbind(0), xw[:, :, :, 2].unbind(1)
        rz, r, z, n_gate = (_steps(v, T, keep, 0)
                            for v in (gates[:, :2], gates[:, 0], gates[:, 1], gates[:, 2]))
        h_all, h_rz, h_n = (_steps(v, T, keep, 0)
                            for v in (hidden.view(-1, G * M, n, H), hidden[:, :2], hidden[:, 2]))
        repeat = lambda h: h.unsqueeze(0).expand(G, M, n, H).reshape(G * M, n, H)   # noqa: E731
        for t in range(T):
            torch.baddbmm(bg_flat, repeat(h[t]), Wg, out=h_all[t])
            torch.sigmoid(x_rz[t] + h_rz[t], out=rz[t])
            a_n = torch.addcmul(x_n[t], r[t], h_n[t])
            torch.sigmoid(a_n.mul_(2), out=n_gate[t]).mul_(2).sub_(1)      # tanh, as for the RNN
            torch.addcmul(n_gate[t], z[t], h[t] - n_gate[t], out=h[t + 1])  # (1 - z) n + z h
        if ctx is not None:
            ctx.save_for_backward(hs, Wg, gates, hidden)
    if ctx is not None:
        ctx.kind, ctx.xw_layout = kind, (xw.shape, xw.stride())
    return h[T].clone()


def _steps(buffer: torch.Tensor, count: int, keep: bool, axis: int = 1) -> list[torch.Tensor]:
    """Views of ``buffer`` along its time axis for steps 0 ... count - 1: one per step if
    ``keep``, else the buffer's slots taken in turn (two for hidden states, one for gates)."""
    slots = buffer.unbind(axis)
    return list(slots) if keep else [slots[t % len(slots)] for t in range(count)]


def _recur_backward(ctx: Any, grad_h: torch.Tensor) -> tuple:
    """``_Unrolled``'s backward pass through time."""
    kind = ctx.kind
    hs, W = ctx.saved_tensors[:2]
    M, T, n, H = hs.shape[0], hs.shape[1] - 1, hs.shape[2], hs.shape[3]
    G = W.shape[0] // M if kind == "gru" else 1
    W_t = W.transpose(1, 2).contiguous()              # W_hh, or for the GRU its gate-major blocks
    dh = grad_h.contiguous()
    da = hs.new_empty_strided(*ctx.xw_layout)         # the gradient at each gate's input, laid out as xw is
    h = hs.unbind(1)
    if kind == "rnn":
        d_flat = hs.new_empty(M, T * n, H)            # the gradient at h W_hh + b_hh (and at xw: the same)
        d_step = d_flat.view(M, T, n, H).unbind(1)
        for t in range(T - 1, -1, -1):
            for is_relu, i, j in ctx.blocks:
                d_ij, dh_ij, h1 = ((d_step[t], dh, h[t + 1]) if len(ctx.blocks) == 1
                                   else (d_step[t][i:j], dh[i:j], h[t + 1][i:j]))
                torch.mul(dh_ij, (h1 > 0).to(h1.dtype) if is_relu else 1 - h1 * h1, out=d_ij)
            dh = torch.bmm(d_step[t], W_t)
        da[:, :, :, 0].copy_(d_flat.view(M, T, n, H))
    else:
        gates, hidden = ctx.saved_tensors[2:]
        r, z, n_all = gates.unbind(1)                 # each (T, M, n, H)
        # the factors that do not depend on the incoming gradient, for all steps at once
        to_n = ((1 - z) * (1 - n_all * n_all)).unbind(0)              # dh_t -> n's input
        to_r = (hidden[:, 2] * r * (1 - r)).unbind(0)                 # n's input -> r's input
        to_z = ((hs[:, :T].transpose(0, 1) - n_all) * z * (1 - z)).unbind(0)   # dh_t -> z's input
        d_hidden = hs.new_empty(T, G, M, n, H)        # the gradient at h W_hh + b_hh, gate-major
        d_n_in = hs.new_empty(T, M, n, H)             # ... and at n's input, which r multiplies
        d_r, d_z, d_n = (d_hidden[:, g].unbind(0) for g in range(3))
        dn_in, d_all = d_n_in.unbind(0), d_hidden.view(T, G * M, n, H).unbind(0)
        r, z = r.unbind(0), z.unbind(0)
        for t in range(T - 1, -1, -1):
            dn = torch.mul(dh, to_n[t], out=dn_in[t])             # at n's input
            torch.mul(dn, to_r[t], out=d_r[t])                     # at r's input, which is h W_hh's too
            torch.mul(dh, to_z[t], out=d_z[t])
            torch.mul(dn, r[t], out=d_n[t])
            dh = torch.bmm(d_all[t], W_t).view(G, M, n, H).sum(0).addcmul_(dh, z[t])
        d_flat = d_hidden.permute(2, 0, 3, 1, 4).reshape(M, T * n, G * H)
        da[:, :, :, :2].copy_(d_flat.view(M, T, n, G, H)[:, :, :, :2])
        da[:, :, :, 2].copy_(d_n_in.transpose(0, 1))
    # the weights' gradients, summed over all steps in one product each
    h_prev = hs[:, :T].reshape(M, T * n, H)                                       # (M, T n, H), a view
    dW = torch.bmm(h_prev.transpose(1, 2), d_flat)
    db = d_flat.sum(1, keepdim=True)
    return da, dW, db, None, None


def _check(configs: Sequence[Config], seeds: Sequence[int]) -> tuple[list[Config], list[int]]:
    configs, seeds = checks.configs_with_seeds(configs, seeds, Config, "recurrent.Config")
    shapes = {shape_of(c) for c in configs}
    if len(shapes) > 1:
        raise ValueError(f"networks trained together must share {', '.join(SHAPE_FIELDS)}; "
                         f"got {sorted(shapes)}")
    return configs, seeds


def train_many(configs: Sequence[Config], seeds: Sequence[int],
               on: torch.device | None = None) -> list[Run]:
    """Train ``configs[i]`` from seed ``seeds[i]``, every i at once, as ``recurrent.train`` trains
    one (the same initial weights and sequences; the numbers agree to float rounding). Returns
    one ``Run`` per network, in the order given."""
    configs, seeds = _check(configs, seeds)
    on = as_device(on)
    start = time.perf_counter()
    order = sorted(range(len(configs)), key=lambda i: (configs[i].nonlinearity, i))
    # subnormal numbers (below 1.2e-38) arise in the backward pass through saturated gates; on a
    # CPU each costs a hundred times an ordinary one, and at that size they carry nothing
    flushed = torch.set_flush_denormal(True) if on.type == "cpu" else False
    try:
        runs = _Training([configs[i] for i in order], [seeds[i] for i in order], on).run()
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    return in_given_order(runs, order, time.perf_counter() - start)


class _Training:
    def __init__(self, configs: list[Config], seeds: list[int], on: torch.device) -> None:
        c0 = configs[0]
        self.configs, self.seeds, self.on = configs, seeds, on
        test_stream = torch.Generator().manual_seed(TEST_SEED)
        self.x_test, self.y_test = adding_problem(TEST_SEQUENCES, c0.length, test_stream, on)
        self.streams, networks = [], []
        for c, s in zip(configs, seeds):
            self.streams.append(seed_all(s))          # the initial weights, and the sequences' own generator
            networks.append(c.network())
        self.stack = Stack(networks, [c.nonlinearity for c in configs], on)
        for p in self.stack.parameters():
            p.requires_grad_(True)
        M = len(configs)
        self.alive = list(range(M))
        self.adam = torch.tensor([c.optimiser == "adam" for c in configs], device=on)
        self.lr = torch.tensor([c.lr for c in configs], device=on)
        self.clip = torch.tensor([c.clip if c.clip is not None else math.inf for c in configs], device=on)
        self.m = [torch.zeros_like(p) for p in self.stack.parameters()]
        self.v = [torch.zeros_like(p) for p in self.stack.parameters()]
        self.t = 0
        g = self.x_test[:GRADIENT_SEQUENCES], self.y_test[:GRADIENT_SEQUENCES]
        self.grads_start = self.stack.input_gradients(*g)
        steps = c0.steps
        self.losses, self.norms = np.full((steps, M), math.nan), np.full((steps, M), math.nan)
        self.updates = np.full((steps, M), math.nan)
        self.stopped, self.clipped = [steps] * M, np.zeros(M)
        self.mse, self.grads_end = np.full(M, math.nan), np.full((M, c0.length), math.nan)

    def run(self) -> list[Run]:
        c0 = self.configs[0]
        for step in range(c0.steps):
            stack = self.stack
            # each network's sequences from its own stream, as adding_problem draws them, made at once
            draws = [draw_adding_problem(c0.batch, c0.length, self.streams[i]) for i in self.alive]
            x, y = assemble_adding_problem(*(torch.stack(d) for d in zip(*draws)))
            x, y = x.to(self.on), y.to(self.on)
            params = stack.parameters()
            for p in params:
                p.grad = None
            loss = ((stack.forward(x) - y) ** 2).mean(1)
            loss.sum().backward()
            with torch.no_grad():
                norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(p.grad.flatten(1), dim=1)
                                 for p in params], 1), dim=1)
                clip = self.clip[self.alive]
                over = norm > clip
                if bool(over.any()):
                    factor = torch.where(over, clip / (norm + CLIP_EPS), torch.ones_like(norm))
                    for p in params:
                        p.grad.mul_(factor.view((-1,) + (1,) * (p.dim() - 1)))
                update_sq = self._step(params)
            losses = loss.detach().double().cpu().numpy()
            self.losses[step, self.alive] = losses
            self.norms[step, self.alive] = norm.double().cpu().numpy()
            self.updates[step, self.alive] = update_sq.sqrt().double().cpu().numpy()
            self.clipped[self.alive] += over.cpu().numpy()
            bad = [k for k in range(stack.M) if not math.isfinite(losses[k])]
            if bad:
                self._drop(bad, step)
                if not self.alive:
                    break
        if self.alive:
            self._score(list(range(self.stack.M)))
        return self._runs()

    def _step(self, params: list[torch.Tensor]) -> torch.Tensor:
        """One step of each network's optimiser (torch.optim.Adam's or SGD's formulas); returns
        each network's squared step length."""
        self.t += 1
        b1, b2 = ADAM_BETAS
        any_adam, all_adam = bool(self.adam.any()), bool(self.adam.all())
        squares = torch.zeros(len(self.alive), device=self.on)
        for k, p in enumerate(params):
            shape = (-1,) + (1,) * (p.dim() - 1)
            g = p.grad
            update = self.lr.view(shape) * g if not all_adam else None
            if any_adam:
                self.m[k].lerp_(g, 1 - b1)
                self.v[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (self.v[k].sqrt() / math.sqrt(1 - b2 ** self.t)).add_(ADAM_EPS)
                adam = (self.lr.view(shape) / (1 - b1 ** self.t)) * self.m[k] / denom
                update = adam if update is None else torch.where(self.adam.view(shape), adam, update)
            before = p.detach().clone()
            p.sub_(update)
            squares += ((p.detach() - before) ** 2).flatten(1).sum(1)
        return squares

    def _drop(self, rows: list[int], step: int) -> None:
        for k in rows:
            self.stopped[self.alive[k]] = step + 1
        self._score(rows)
        keep = [k for k in range(self.stack.M) if k not in rows]
        self.alive = [self.alive[k] for k in keep]
        if not keep:
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.on)
        self.stack = self.stack.select(keep)
        for p in self.stack.parameters():
            p.requires_grad_(True)
        # clip stays indexed by alive
        self.adam, self.lr, self.clip = self.adam[index], self.lr[index], self.clip
        self.m = [t.index_select(0, index) for t in self.m]
        self.v = [t.index_select(0, index) for t in self.v]

    def _score(self, rows: list[int]) -> None:
        part = self.stack if len(rows) == self.stack.M else self.stack.select(rows)
        originals = [self.alive[k] for k in rows]
        self.mse[originals] = part.mse(self.x_test, self.y_test)
        self.grads_end[originals] = part.input_gradients(self.x_test[:GRADIENT_SEQUENCES],
                                                         self.y_test[:GRADIENT_SEQUENCES])

    def _runs(self) -> list[Run]:
        runs = []
        for i, (c, s) in enumerate(zip(self.configs, self.seeds)):
            n = self.stopped[i]
            error = float(self.mse[i])
            runs.append(Run(c, s, self.losses[:n, i].copy(), self.norms[:n, i].copy(),
                                     self.updates[:n, i].copy(), error, 1.0 - error / BASELINE_MSE,
                                     self.grads_start[i].copy(), self.grads_end[i].copy(),
                                     float(self.clipped[i]) / max(1, n), 0.0))
        return runs


# --- configs x seeds: grouped by shape, the groups trained on worker processes ---------------------
def train_all(configs: dict[Any, Config], seeds: Sequence[int] | dict[Any, Sequence[int]], *,
              workers: int | None = None, desc: str = "runs",
              progress: bool | None = None) -> dict[Any, list[Run]]:
    """Train every config with every seed: {name: [run per seed]}. ``seeds`` is one list for
    all configs, or a dict giving each config's name its own list. The networks are trained as
    batched models (:func:`train_many`): all those of one shape (kind, length,
    hidden units, steps, batch) together. On a CPU these groups go to ``workers`` single-threaded
    processes (default: one per core, at most 4; they are kept for the next call, see
    ``runner.shared_workers``), a group that costs more than half of the call's work split in
    two; on a GPU they run one after another. The groups depend only on the configs and seeds
    asked for, not on the number of workers, so a call gives the same numbers every time, in
    this process or in workers, on any number of cores (a network batched with others agrees
    with one trained alone only to float rounding)."""
    if not isinstance(configs, dict) or not configs:
        raise TypeError("configs must be a non-empty dict {name: recurrent.Config}")
    for name, c in configs.items():
        if not isinstance(c, Config):
            raise TypeError(f"configs[{name!r}] must be a recurrent.Config, got {type(c).__name__}")
    if isinstance(seeds, dict):
        if set(seeds) != set(configs):
            raise ValueError("seeds, given as a dict, must have exactly the names of configs as keys")
        seeds_of = seeds
    else:
        seeds_of = {name: seeds for name in configs}
    seeds_of = {name: checks.seeds(ss) for name, ss in seeds_of.items()}
    on_cpu = as_device(None).type == "cpu"
    workers = (checks.integer(workers, "workers", 1) if on_cpu and workers is not None
               else default_workers(on_cpu))
    todo = list(dict.fromkeys((c, s) for name, c in configs.items() for s in seeds_of[name]))
    jobs = _jobs(todo)
    answers = shared_workers(workers).run(_train_job, jobs, cost=lambda job: job_cost(job[0][0], len(job)),
                                          desc=desc, progress=progress)
    results = {key: run for job, runs in zip(jobs, answers) for key, run in zip(job, runs)}
    return {name: [results[(c, s)] for s in seeds_of[name]] for name, c in configs.items()}


def job_cost(config: Config, networks: int) -> float:
    """About how many seconds training ``networks`` networks of ``config`` together takes on one
    core: per step and time step, a fixed cost plus a cost per network (microseconds, measured on
    the book's 2-core CPU at 32 hidden units). The vanilla RNNs and the GRUs share one batched
    recurrence, the GRU's (three gates) about four times as costly per network; the LSTMs train
    one by one through ``torch.lstm``, so nearly all their cost is per network. (On chapter 5's
    jobs, each alone on one core, three GRUs took 25.9 s at T = 50 and 12.0 s at T = 20; these
    figures give 27.8 s and 11.1 s.)"""
    checks.instance(config, "config", Config, "a recurrent.Config")
    networks = checks.integer(networks, "networks", 1)
    fixed, per_network = {"rnn": (40, 22), "gru": (100, 90), "lstm": (10, 72)}[config.kind]
    return config.steps * config.length * (fixed + per_network * networks) * 1e-6


def _jobs(todo: list[tuple[Config, int]]) -> list[list[tuple[Config, int]]]:
    """The (config, seed) pairs grouped by shape; a group that costs more than half of all the
    work is split in two (so that two workers share it), whatever the number of workers: which
    networks train together, and so every number, must not depend on the machine. The
    costliest jobs first."""
    groups: dict[tuple, list[tuple[Config, int]]] = {}
    for c, s in todo:
        groups.setdefault((c.kind, c.length, c.hidden, c.steps, c.batch), []).append((c, s))
    total = sum(job_cost(g[0][0], len(g)) for g in groups.values())
    jobs = []
    for group in groups.values():
        group.sort(key=lambda cs: cs[0].nonlinearity)
        if len(group) > 1 and job_cost(group[0][0], len(group)) > total / 2:
            half = len(group) // 2
            jobs += [group[:half], group[half:]]
        else:
            jobs.append(group)
    return sorted(jobs, key=lambda j: -job_cost(j[0][0], len(j)))


def _train_job(job: list[tuple[Config, int]]) -> list[Run]:
    return train_many([c for c, _ in job], [s for _, s in job])

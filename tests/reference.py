"""Slow, readable NumPy float64 reference of rnnkit's recurrent layers.

This is the oracle the core is tested against.  It loops over layers, directions and
time steps one at a time, in float64, with PyTorch's conventions:

    RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)                 act = tanh | relu
    LSTM  i, f, g, o = σ, σ, tanh, σ (W_ih x + b_ih + W_hh h + b_hh)   rows i, f, g, o
          c' = f*c + i*g,  h' = o*tanh(c')  [ h' = W_hr (o*tanh(c')) with proj_size P > 0 ]
          peepholes=True (ONNX's peephole LSTM; weight_peephole (3, H), rows p_i, p_f, p_o):
          i = σ(... + p_i*c),  f = σ(... + p_f*c),  c' = f*c + i*g,  o = σ(... + p_o*c')
    GRU   r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)   rows r, z, n
          reset_after=True:  n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
          reset_after=False: n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)
          h' = (1-z)*n + z*h

Shape letters: T steps, B batch, I input size, H hidden size, P proj size, Hout = P or H,
D = 2 if bidirectional else 1, L layers, G gates (RNN 1, LSTM 4, GRU 3).

lengths follow PyTorch's packed sequences: a sequence of length n is computed at steps
0..n-1 only, its outputs at steps >= n are 0, its final state is the state at step n-1,
and the reverse direction starts at step n-1.  Dropout between layers is given as a
list of L-1 multiplicative masks of shape (T, B, D*Hout) (already scaled by 1/(1-p)).
"""

from __future__ import annotations

import dataclasses

import numpy as np

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


@dataclasses.dataclass(frozen=True)
class Spec:
    """The architecture of one recurrent module (the constructor arguments)."""

    mode: str  # "RNN", "LSTM" or "GRU"
    input_size: int
    hidden_size: int
    num_layers: int = 1
    nonlinearity: str = "tanh"  # RNN only
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0  # LSTM only
    reset_after: bool = True  # GRU only
    peepholes: bool = False  # LSTM only

    def __post_init__(self) -> None:
        assert self.mode in GATES, self.mode
        assert not self.peepholes or self.mode == "LSTM", "peepholes are an LSTM option"

    @property
    def gates(self) -> int:
        return GATES[self.mode]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def out_size(self) -> int:
        """Hout: the size of h (per direction)."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.out_size

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """PyTorch's parameter names and shapes, in PyTorch's order (weight_peephole, which
        torch does not have, last in each layer-direction)."""
        G, H = self.gates * self.hidden_size, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes["weight_ih" + sfx] = (G, self.layer_input_size(layer))
                shapes["weight_hh" + sfx] = (G, self.out_size)
                if self.bias:
                    shapes["bias_ih" + sfx] = (G,)
                    shapes["bias_hh" + sfx] = (G,)
                if self.proj_size > 0:
                    shapes["weight_hr" + sfx] = (self.proj_size, H)
                if self.peepholes:
                    shapes["weight_peephole" + sfx] = (3, H)  # rows p_i, p_f, p_o
        return shapes

    def kwargs(self) -> dict:
        """Constructor keyword arguments (rnnkit's names, which are PyTorch's)."""
        kw = dict(
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
        )
        if self.mode == "RNN":
            kw["nonlinearity"] = self.nonlinearity
        if self.mode == "LSTM":
            kw["proj_size"] = self.proj_size
            if self.peepholes:  # only when set: the plain LSTM is built with PyTorch's own arguments
                kw["peepholes"] = True
        if self.mode == "GRU":
            kw["reset_after"] = self.reset_after
        return kw

    def __str__(self) -> str:
        name = self.mode
        if self.mode == "RNN":
            name += "-" + self.nonlinearity
        if self.peepholes:
            name += "-peep"
        if self.proj_size:
            name += f"-proj{self.proj_size}"
        if self.mode == "GRU" and not self.reset_after:
            name += "-v1"
        name += f"-I{self.input_size}H{self.hidden_size}L{self.num_layers}"
        for flag, tag in [
            (self.bidirectional, "bi"),
            (self.batch_first, "bf"),
            (not self.bias, "nobias"),
            (self.dropout > 0, f"drop{self.dropout}"),
        ]:
            if flag:
                name += "-" + tag
        return name


# One entry per cell variant the core implements; tests parametrise over these.
CELLS = {
    "rnn_tanh": dict(mode="RNN", nonlinearity="tanh"),
    "rnn_relu": dict(mode="RNN", nonlinearity="relu"),
    "lstm": dict(mode="LSTM"),
    "lstm_proj": dict(mode="LSTM", proj_size=2),
    "lstm_peephole": dict(mode="LSTM", peepholes=True),
    "lstm_peephole_proj": dict(mode="LSTM", peepholes=True, proj_size=2),
    "gru": dict(mode="GRU", reset_after=True),
    "gru_v1": dict(mode="GRU", reset_after=False),
}


def spec_for(cell: str, input_size: int = 3, hidden_size: int = 4, **kw) -> Spec:
    """The Spec of a cell variant (a key of CELLS) with the given sizes and options."""
    return Spec(input_size=input_size, hidden_size=hidden_size, **{**CELLS[cell], **kw})


def init_params(spec: Spec, rng: np.random.Generator, scale: float = 0.6) -> dict[str, np.ndarray]:
    """Random float64 parameters U(-scale, scale) with PyTorch's names and shapes."""
    return {k: rng.uniform(-scale, scale, size=s) for k, s in spec.param_shapes().items()}


def draw_dropout_masks(spec: Spec, rng: np.random.Generator, T: int, B: int) -> list[np.ndarray]:
    """The masks rnnkit draws at a training forward: keep = rng.random((T,B,D*Hout)) >= p,
    for layers 0..L-2 in order, scaled by 1/(1-p)."""
    p = spec.dropout
    if p == 0 or spec.num_layers < 2:
        return []
    shape = (T, B, spec.num_directions * spec.out_size)
    return [(rng.random(shape) >= p) / (1.0 - p) for _ in range(spec.num_layers - 1)]


def sigmoid(a: np.ndarray) -> np.ndarray:
    # 1/(1+exp(-a)) written with tanh: exact, and no overflow for large |a|
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def float_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """a (B, K) times the weight matrix w (N, K): a @ w.T."""
    return a @ w.T


def cell_step(spec: Spec, p: dict, x_t: np.ndarray, h: np.ndarray, c: np.ndarray | None, mm=float_product):
    """One step for a (B, ·) batch. p holds w_ih, w_hh, b_ih, b_hh (and w_hr, w_peep). Returns h', c'.
    mm(a, w) is every product by a weight matrix (a reduced-precision one in test_quantize)."""
    H = spec.hidden_size
    gi = mm(x_t, p["w_ih"]) + p["b_ih"]  # (B, G*H)
    if spec.mode == "RNN":
        a = gi + mm(h, p["w_hh"]) + p["b_hh"]
        return (np.tanh(a) if spec.nonlinearity == "tanh" else np.maximum(a, 0.0)), None
    if spec.mode == "LSTM":
        a = gi + mm(h, p["w_hh"]) + p["b_hh"]
        a_i, a_f, a_g, a_o = a[:, 0 * H : 1 * H], a[:, 1 * H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H : 4 * H]
        if spec.peepholes:  # i and f see the old cell state
            p_i, p_f, _ = p["w_peep"]
            a_i = a_i + p_i * c
            a_f = a_f + p_f * c
        i = sigmoid(a_i)
        f = sigmoid(a_f)
        g = np.tanh(a_g)
        c_new = f * c + i * g
        if spec.peepholes:  # o sees the new one
            a_o = a_o + p["w_peep"][2] * c_new
        o = sigmoid(a_o)
        h_new = o * np.tanh(c_new)
        if spec.proj_size > 0:
            h_new = mm(h_new, p["w_hr"])
        return h_new, c_new
    # GRU
    w_hh, b_hh = p["w_hh"], p["b_hh"]
    r = sigmoid(gi[:, 0 * H : 1 * H] + mm(h, w_hh[0 * H : 1 * H]) + b_hh[0 * H : 1 * H])
    z = sigmoid(gi[:, 1 * H : 2 * H] + mm(h, w_hh[1 * H : 2 * H]) + b_hh[1 * H : 2 * H])
    if spec.reset_after:
        n = np.tanh(gi[:, 2 * H :] + r * (mm(h, w_hh[2 * H :]) + b_hh[2 * H :]))
    else:
        n = np.tanh(gi[:, 2 * H :] + mm(r * h, w_hh[2 * H :]) + b_hh[2 * H :])
    return (1.0 - z) * n + z * h, None


def run_direction(spec, p, x, h0, c0, lengths, reverse, mm=float_product):
    """One layer, one direction over a time-major (T, B, in) input. Returns out (T,B,Hout), h, c."""
    T, B = x.shape[:2]
    out = np.zeros((T, B, spec.out_size))
    h, c = h0.copy(), (None if c0 is None else c0.copy())
    for t in reversed(range(T)) if reverse else range(T):
        active = (t < lengths)[:, None]  # (B, 1): steps at and past a length are skipped
        h_new, c_new = cell_step(spec, p, x[t], h, c, mm)
        h = np.where(active, h_new, h)
        if c is not None:
            c = np.where(active, c_new, c)
        out[t] = np.where(active, h_new, 0.0)
    return out, h, c


def layer_params(spec: Spec, params: dict, layer: int, d: int) -> dict:
    sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
    G = spec.gates * spec.hidden_size
    get = lambda k: np.asarray(params[k + sfx], dtype=np.float64)  # noqa: E731
    p = {"w_ih": get("weight_ih"), "w_hh": get("weight_hh")}
    p["b_ih"] = get("bias_ih") if spec.bias else np.zeros(G)
    p["b_hh"] = get("bias_hh") if spec.bias else np.zeros(G)
    if spec.proj_size > 0:
        p["w_hr"] = get("weight_hr")
    if spec.peepholes:
        p["w_peep"] = get("weight_peephole")
    return p


def forward(spec: Spec, params: dict, x, h0=None, c0=None, lengths=None, dropout_masks=None, mm=float_product):
    """The module's forward in float64. x in the caller's layout ((T,B,I), (B,T,I) with
    batch_first, or unbatched (T,I)). Returns (out, h_n, c_n); c_n is None except for LSTM."""
    x = np.asarray(x, dtype=np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]
        h0 = None if h0 is None else np.asarray(h0, dtype=np.float64)[:, None, :]
        c0 = None if c0 is None else np.asarray(c0, dtype=np.float64)[:, None, :]
    elif spec.batch_first:
        x = x.transpose(1, 0, 2)
    T, B, _ = x.shape
    L, D, H, Hout = spec.num_layers, spec.num_directions, spec.hidden_size, spec.out_size
    if h0 is None:
        h0 = np.zeros((L * D, B, Hout))
    if spec.mode == "LSTM" and c0 is None:
        c0 = np.zeros((L * D, B, H))
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    masks = list(dropout_masks or [])

    h_n = np.zeros((L * D, B, Hout))
    c_n = np.zeros((L * D, B, H)) if spec.mode == "LSTM" else None
    layer_in = x
    for layer in range(L):
        outs = []
        for d in range(D):
            k = layer * D + d
            out_d, h, c = run_direction(
                spec,
                layer_params(spec, params, layer, d),
                layer_in,
                np.asarray(h0[k], dtype=np.float64),
                None if c0 is None else np.asarray(c0[k], dtype=np.float64),
                lengths,
                reverse=d == 1,
                mm=mm,
            )
            outs.append(out_d)
            h_n[k] = h
            if c_n is not None:
                c_n[k] = c
        layer_in = np.concatenate(outs, axis=2)  # (T, B, D*Hout): forward then reverse
        if layer < L - 1 and masks:
            layer_in = layer_in * masks[layer]
    out = layer_in
    if unbatched:
        return out[:, 0], h_n[:, 0], (None if c_n is None else c_n[:, 0])
    if spec.batch_first:
        out = out.transpose(1, 0, 2)
    return out, h_n, c_n

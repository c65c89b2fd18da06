"""The CUDA path (AMP, channels_last, cuDNN RNNs, edge checkpointing on the GPU).

Skipped where no CUDA device is present (CI, the 2-core machine); run on a lent GPU machine with
``python -m pytest tests/test_cuda.py``. Each test compares the GPU against the CPU or against the
plain computation, so a silently wrong kernel path fails, not only a crash.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from emodarts_core.config import SearchConfig, SearchSpaceConfig, get_profile, override
from emodarts_core.nas.genotype import Genotype
from emodarts_core.nas.supernet import SuperNet
from emodarts_core.search.architect import Architect
from emodarts_core.search.loop import run_search
from emodarts_core.train.fit import run_train
from emodarts_core.train.runs import RunConfig, RunDir

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SHAPE = (12, 10)


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 convolutions/matmuls would differ from the CPU by ~1e-3; compare in true float32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _space(dropout: float = 0.0) -> SearchSpaceConfig:
    return SearchSpaceConfig(cnn_layers=3, cnn_nodes=2, init_channels=4, seq_cells=2, seq_nodes=2,
                             seq_ops="all", seq_hidden=6, dropout=dropout)


def _net(dropout: float = 0.0, **kw) -> SuperNet:
    """With ``dropout=0`` nothing random is left in the forward pass (the attentive ops' fixed
    0.3 between stacked layers is switched off too), so CPU and CUDA compute the same function."""
    torch.manual_seed(0)
    net = SuperNet(_space(dropout), 4, SHAPE, **kw).train()
    if dropout == 0.0:
        for m in net.modules():
            if isinstance(m, torch.nn.RNNBase):
                m.dropout = 0.0
    return net


def _data(n: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, *SHAPE, generator=g), torch.randint(0, 4, (n,), generator=g)


def _to_cuda(net: SuperNet) -> SuperNet:
    return copy.deepcopy(net).cuda().to(memory_format=torch.channels_last)


def _grads(net, x, y):
    loss = net.loss(x, y)
    return loss, torch.autograd.grad(loss, list(net.parameters()))


# The comparisons run in float64: alpha gradients are small differences of large sums, so float32
# rounding alone moves some of them by several per cent between two correct implementations.


def test_supernet_loss_and_gradients_on_cuda_equal_the_cpu():
    cpu = _net().double()
    gpu = _to_cuda(cpu)
    x, y = _data()
    x = x.double()
    l1, g1 = _grads(cpu, x, y)
    l2, g2 = _grads(gpu, x.cuda().contiguous(memory_format=torch.channels_last), y.cuda())
    assert l2.item() == pytest.approx(l1.item(), rel=1e-10)
    for (name, _), a, b in zip(cpu.named_parameters(), g1, g2):
        assert torch.allclose(a, b.cpu(), rtol=1e-7, atol=1e-10), name


def test_memory_efficient_supernet_on_cuda_equals_the_plain_one():
    """Edge checkpointing on the GPU, dropout on (also between stacked LSTM / RNN layers): the
    recomputation draws the same masks, so loss, gradients and BatchNorm statistics agree. The
    checkpointed net runs first, as in a fresh search process."""
    plain = _to_cuda(_net(dropout=0.3)).double()
    eff = copy.deepcopy(plain)
    eff.memory_efficient = True
    x, y = _data()
    x, y = x.double().cuda(), y.cuda()
    torch.manual_seed(7)
    l2, g2 = _grads(eff, x, y)
    torch.manual_seed(7)
    l1, g1 = _grads(plain, x, y)
    assert torch.allclose(l1, l2, rtol=1e-12, atol=0)
    for (name, _), a, b in zip(plain.named_parameters(), g1, g2):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), name
    for (name, b1), b2 in zip(plain.named_buffers(), eff.buffers()):
        assert torch.allclose(b1.double(), b2.double(), rtol=1e-9, atol=1e-12), name
    # and the masks are torch's: the same seed gives the same loss again
    torch.manual_seed(7)
    assert torch.allclose(plain.loss(x, y), l1, rtol=1e-12, atol=0)


@pytest.mark.parametrize("order", ["first", "second"])
def test_architect_alpha_gradients_on_cuda_equal_the_cpu(order):
    scfg = override(SearchConfig(), order=order)
    grads = []
    for device in ("cpu", "cuda"):
        net = _net().double()
        net = net if device == "cpu" else _to_cuda(net)
        w_opt = torch.optim.SGD(net.weights(), lr=0.05, momentum=0.9, weight_decay=3e-4)
        xw, yw = _data(seed=1)
        xa, ya = _data(seed=2)
        dev = torch.device(device)
        g, _ = Architect(net, scfg).alpha_gradients(xw.double().to(dev), yw.to(dev),
                                                    xa.double().to(dev), ya.to(dev), 0.05, w_opt)
        grads.append([t.cpu() for t in g])
    for a, b in zip(*grads):
        assert a.abs().max() > 0
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_logits_stay_close_to_float32(amp):
    from emodarts_core.train.engine import autocast_context

    net = _to_cuda(_net()).eval()
    x = _data(n=8)[0].cuda().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = net(x)
        with autocast_context(torch.device("cuda"), amp):
            low = net(x)
    assert low.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert torch.isfinite(low).all()
    assert torch.allclose(low.float(), ref, atol=0.05 * ref.abs().max().item() + 1e-2)


def _tiny_fold():
    from test_search import tiny_fold

    return tiny_fold(n_train=24)


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_search_then_train_on_cuda(tmp_path, amp):
    p = get_profile("smoke")
    p = dataclasses.replace(p, search=override(p.search, epochs=2),
                            train=override(p.train, epochs=2))
    data = _tiny_fold()
    base = dict(corpus="generated", data_root=str(tmp_path / "d"), profile=p, device="cuda",
                options={"amp": amp})
    res = run_search(RunConfig(kind="search", out_dir=str(tmp_path / "s"), **base),
                     progress=False, data=data)
    run = RunDir.open(res.run_dir)
    env = run.read_json("environment.json")
    assert env["device_name"] == torch.cuda.get_device_name(0)
    for rec in run.history()["epochs"]:
        assert math.isfinite(rec["train_loss"]) and math.isfinite(rec["valid_loss"])
    # the checkpoint of a GPU run loads safely on any machine
    ckpt = torch.load(run.file("checkpoint.pt"), map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in ckpt["net"].values())
    geno = Genotype.load(run.file("genotype.json"))
    tr = run_train(RunConfig(kind="train", out_dir=str(tmp_path / "t"), **base), geno,
                   progress=False, data=data)
    m = RunDir.open(tr.run_dir).read_json("metrics.json")
    assert m["n"] == 8 and 0.0 <= m["ua"] <= 1.0 and sum(map(sum, m["confusion"])) == 8
    for h in RunDir.open(tr.run_dir).history()["epochs"]:
        assert math.isfinite(h["train_loss"])


def test_training_step_on_cuda_learns_a_separable_problem():
    """A few hundred bf16 steps on the GPU drive the loss of an easy problem down."""
    from emodarts_core.train.engine import autocast_context

    net = _to_cuda(_net())
    opt = torch.optim.SGD(net.weights(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(32) % 4
    x = torch.randn(32, 1, *SHAPE, generator=g) + 1.5 * y.view(-1, 1, 1, 1)
    x, y = x.cuda().contiguous(memory_format=torch.channels_last), y.cuda()
    first = None
    for _ in range(60):
        with autocast_context(torch.device("cuda"), "bf16"):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_training_masks_on_cuda_are_bands_drawn_from_the_checkpointed_generator():
    """``mask_batch`` on a CUDA (channels_last) batch: per utterance one band of at most
    ``freq_mask`` coefficients and one span of at most ``time_mask`` frames set to 0, nothing
    else touched, masks differing between utterances, and the same seed giving the same masks
    (the CUDA generator's state is what a training checkpoint saves)."""
    from test_train import check_band_masks

    from emodarts_core.train.engine import mask_batch

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(16, 1, 12, 40, generator=g) + 5.0).cuda()   # no zeros before masking
    x = x.contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    a = mask_batch(x, 4, 10)
    torch.manual_seed(3)
    b = mask_batch(x, 4, 10)
    assert a.is_cuda and torch.equal(a, b)
    check_band_masks(x.cpu(), a.cpu(), 4, 10)
    zero = (a == 0)[:, 0].cpu()
    assert zero.any()
    assert len({tuple(z.flatten().tolist()) for z in zero}) > 1

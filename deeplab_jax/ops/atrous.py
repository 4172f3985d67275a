"""Atrous (dilated) convolution as Flax linen modules, in three implementations.

Atrous convolution samples its input with holes: a k x k kernel at rate r reads pixels r apart, covering
(k - 1) * r + 1 pixels per side with only k * k weights. Three ways to compute it, same numbers:

- 'dilation': `lax.conv_general_dilated` with `rhs_dilation=(r, r)`, in NHWC / HWIO layout. XLA may
  lower this on some backends by zero-padding the kernel to (k - 1) * r + 1 taps per side, which makes
  large rates very slow.
- 'space_to_batch': DeepLab v2 §3.1. The r * r phase sub-images x[p::r, q::r] go into the batch, a dense
  (rate 1) conv runs on them, and the outputs are interleaved back. Only k * k taps are ever computed.
- 'taps': one matmul per kernel tap over the part of the image it reads (ops.conv.atrous_taps); a tap
  that reads only padding (rate >= the feature map's side, as ASPP's at output stride 16) is skipped.

`default_impl` says which one measured faster on a platform: atrous_defaults.json beside this file,
written by `python -m deeplab_jax.benchmarks.atrous --write_defaults` on that platform.

Besides the atrous impl, two lowerings are picked per platform from the same file (its 'lowering'
entry, written by `python -m deeplab_jax.benchmarks.conv_ops --write_defaults`): depthwise convs as the
library's grouped conv or as a sum of shifted taps, 1x1 convs as the library conv or one matmul
(ops.conv). A `ConvImpl` carries all three choices through the models.
"""
import dataclasses
import json
import math
import os
from typing import Callable

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from deeplab_jax.ops import conv

_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
IMPLS = ('dilation', 'space_to_batch', 'taps')

# {platform: {'regular': impl, 'depthwise': impl, and how they were measured: 'date', 'device', 'measured':
#  [{'command', 'over_dilation': {kind: {impl: geometric-mean time ratio to dilation over rates > 1}}}],
#  'lowering': {'depthwise': ..., 'pointwise': ..., and how they were measured}}}.
DEFAULTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'atrous_defaults.json')
_KIND = {False: 'regular', True: 'depthwise'}


def read_defaults(path: str | None = None) -> dict:
  """The measured table at `path` (default DEFAULTS_PATH); {} when there is no file."""
  try:
    with open(path or DEFAULTS_PATH) as f:
      return json.load(f)
  except FileNotFoundError:
    return {}


def _write_entry(platform: str, update: Callable[[dict], dict], path: str | None) -> dict:
  """Rewrites the file with `platform`'s entry replaced by update(old entry); returns the new entry."""
  table = read_defaults(path)
  table[platform.lower()] = update(table.get(platform.lower(), {}))
  with open(path or DEFAULTS_PATH, 'w') as f:
    json.dump(table, f, indent=2)
    f.write('\n')
  return table[platform.lower()]


def write_defaults(platform: str, impls: dict[bool, str], info: dict, path: str | None = None) -> dict:
  """Replaces `platform`'s atrous impls with `impls` ({depthwise: impl}) and `info`; returns the entry.

  Its 'lowering' entry and other platforms' entries are kept as they are.
  """
  entry = {_KIND[depthwise]: impl for depthwise, impl in sorted(impls.items())}
  keep = lambda old: {'lowering': old['lowering']} if 'lowering' in old else {}
  return _write_entry(platform, lambda old: {**entry, **info, **keep(old)}, path)


def write_lowering(platform: str, choices: dict[str, str], info: dict, path: str | None = None) -> dict:
  """Replaces `platform`'s 'lowering' entry with `choices` ({'depthwise': ..., 'pointwise': ...}) and
  `info`; returns the platform's entry."""
  return _write_entry(platform, lambda old: {**old, 'lowering': {**choices, **info}}, path)


def default_impl(platform: str, depthwise: bool) -> str:
  """The atrous implementation measured fastest on `platform` ('cpu', 'gpu', 'tpu', ...).

  Args:
    platform: a JAX backend name, e.g. `jax.default_backend()`.
    depthwise: whether the conv is depthwise (feature_group_count = channels).

  Returns:
    'dilation' or 'space_to_batch', as DEFAULTS_PATH records it; 'dilation' for platforms it lacks.
  """
  impl = read_defaults().get(platform.lower(), {}).get(_KIND[bool(depthwise)], 'dilation')
  if impl not in IMPLS:
    raise ValueError(f'{DEFAULTS_PATH}: {platform} {_KIND[bool(depthwise)]}={impl!r}; expected one of '
                     f'{IMPLS}.')
  return impl


def resolve_impl(impl: str, depthwise: bool) -> str:
  """`impl`, with 'auto' replaced by `default_impl` for the backend being traced for."""
  return default_impl(jax.default_backend(), depthwise) if impl == 'auto' else impl


# Lowerings of depthwise and 1x1 convs; the first of each is the library conv, the default of a platform
# the file does not list.
LOWERINGS = {'depthwise': ('grouped', 'taps'), 'pointwise': ('conv', 'dot')}


def default_lowering(platform: str, kind: str) -> str:
  """The lowering of `kind` ('depthwise' or 'pointwise') measured fastest on `platform`."""
  choice = read_defaults().get(platform.lower(), {}).get('lowering', {}).get(kind, LOWERINGS[kind][0])
  if choice not in LOWERINGS[kind]:
    raise ValueError(f'{DEFAULTS_PATH}: {platform} lowering {kind}={choice!r}; expected one of '
                     f'{LOWERINGS[kind]}.')
  return choice


CONV_IMPL_CHOICES = {'atrous': ('auto',) + IMPLS, 'depthwise': ('auto',) + LOWERINGS['depthwise'],
                     'pointwise': ('auto',) + LOWERINGS['pointwise']}


@dataclasses.dataclass(frozen=True)
class ConvImpl:
  """How convs are computed; every choice gives the same numbers and uses the same parameters.

  Attributes:
    atrous: 'auto', 'dilation' or 'space_to_batch' (model.atrous_impl; see `atrous_conv`).
    depthwise: 'auto', 'grouped' (lax feature_group_count) or 'taps' (ops.conv.depthwise_taps);
      model.depthwise_impl.
    pointwise: 'auto', 'conv' (lax) or 'dot' (ops.conv.pointwise_dot); model.pointwise_impl.
  """
  atrous: str = 'auto'
  depthwise: str = 'auto'
  pointwise: str = 'auto'

  def __post_init__(self):
    for field, known in CONV_IMPL_CHOICES.items():
      if getattr(self, field) not in known:
        raise ValueError(f'ConvImpl.{field}={getattr(self, field)!r}; expected one of {known}.')

  def lowering(self, kind: str) -> str:
    """The depthwise or pointwise lowering, 'auto' resolved for the backend being traced for."""
    choice = getattr(self, kind)
    return default_lowering(jax.default_backend(), kind) if choice == 'auto' else choice


def as_conv_impl(impl: 'str | ConvImpl') -> ConvImpl:
  """An atrous impl name means that atrous impl with the platform's lowerings."""
  return impl if isinstance(impl, ConvImpl) else ConvImpl(atrous=impl)


def atrous_conv(x: jax.Array, kernel: jax.Array, rate: int = 1, stride: int = 1,
                feature_group_count: int = 1, impl: str = 'dilation') -> jax.Array:
  """'Same'-padded atrous convolution.

  Args:
    x: input [B, H, W, Cin].
    kernel: [kh, kw, Cin / feature_group_count, Cout].
    rate: dilation rate r.
    stride: spatial stride s.
    feature_group_count: Cin for a depthwise conv, else 1.
    impl: 'dilation', 'space_to_batch' or 'taps' (ops.conv.atrous_taps / depthwise_taps: one matmul
      or multiply per tap, taps that read only padding skipped); rate 1 or stride != 1 always runs
      the plain conv.

  Returns:
    [B, ceil(H / s), ceil(W / s), Cout].
  """
  if impl not in IMPLS:
    raise ValueError(f'atrous_conv: impl={impl!r}; expected one of {IMPLS}.')
  if impl == 'taps' and rate > 1 and stride == 1:
    if feature_group_count == 1:
      return conv.atrous_taps(x, kernel, rate)
    if kernel.shape[2] == 1 and kernel.shape[3] == x.shape[-1] == feature_group_count:
      return conv.depthwise_taps(x, kernel, rate)
  if impl == 'space_to_batch' and rate > 1 and stride == 1:
    return _space_to_batch_conv(x, kernel, rate, feature_group_count)
  padding = [conv.same_padding(kernel.shape[0], rate), conv.same_padding(kernel.shape[1], rate)]
  return lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=padding, rhs_dilation=(rate, rate),
      dimension_numbers=_DIMENSION_NUMBERS, feature_group_count=feature_group_count)


def _phase_padding(size: int, kernel_size: int, rate: int) -> tuple[int, int, int]:
  """Padding (low, high) of one spatial axis for space-to-batch, and the rows per phase output.

  Output row i = q * r + p reads padded rows i + t * r = (q + t) * r + p, t < k: row q + t of phase p.
  So each phase needs ceil(size / r) + k - 1 rows, and the padded axis r times that; the low side is
  the SAME padding, the high side whatever is left (at least the SAME padding, since r * ceil(size / r)
  >= size).
  """
  out_rows = math.ceil(size / rate)
  low, _ = conv.same_padding(kernel_size, rate)
  padded = rate * (out_rows + kernel_size - 1)
  return low, padded - size - low, out_rows


def _split_padding(padding: tuple[int, int, int], rate: int,
                   in_conv: bool) -> tuple[tuple[int, int], tuple[int, int]]:
  """Splits one axis' (low, high) phase padding into padding of x and padding of each phase's conv."""
  low, high, _ = padding
  phase = (low // rate, high // rate) if in_conv else (0, 0)
  return (low - rate * phase[0], high - rate * phase[1]), phase


def _space_to_batch_conv(x: jax.Array, kernel: jax.Array, rate: int,
                         feature_group_count: int) -> jax.Array:
  """Stride-1 'same' atrous conv as a dense conv over the r * r phase sub-images.

  Args:
    x: [B, H, W, Cin].
    kernel: [kh, kw, Cin / feature_group_count, Cout].
    rate: r > 1.
    feature_group_count: passed through to the dense conv (Cin for depthwise).

  Returns:
    [B, H, W, Cout], equal to the rhs_dilation conv up to float rounding.
  """
  batch, height, width, channels = x.shape
  pad_h = _phase_padding(height, kernel.shape[0], rate)
  pad_w = _phase_padding(width, kernel.shape[1], rate)
  # The padding's whole multiples of r can instead pad every phase inside the conv. On XLA:CPU that
  # ran ~4x faster than a VALID conv on pre-padded phases of 17x17 (rate 2 at 33x33), but ~18x slower
  # on phases smaller than the kernel (2x2 at rate 18), so it is used only for phases at least k wide.
  out_h, out_w = pad_h[2], pad_w[2]
  in_conv = min(out_h, out_w) >= max(kernel.shape[:2])
  (pre_h, phase_h), (pre_w, phase_w) = (_split_padding(pad, rate, in_conv) for pad in (pad_h, pad_w))
  x = jnp.pad(x, ((0, 0), pre_h, pre_w, (0, 0)))
  rows, cols = x.shape[1] // rate, x.shape[2] // rate
  # [B, rows*r, cols*r, C] -> [r, r, B, rows, cols, C] -> [r*r*B, rows, cols, C]: phase (p, q) is
  # x[:, p::r, q::r], a batch of its own.
  x = x.reshape(batch, rows, rate, cols, rate, channels).transpose(2, 4, 0, 1, 3, 5)
  x = x.reshape(rate * rate * batch, rows, cols, channels)
  y = lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding=(phase_h, phase_w),
                               dimension_numbers=_DIMENSION_NUMBERS,
                               feature_group_count=feature_group_count)
  features = y.shape[-1]
  # Inverse: [r*r*B, out_h, out_w, F] -> [B, out_h, r, out_w, r, F] -> [B, out_h*r, out_w*r, F].
  y = y.reshape(rate, rate, batch, out_h, out_w, features).transpose(2, 3, 0, 4, 1, 5)
  y = y.reshape(batch, out_h * rate, out_w * rate, features)
  return y[:, :height, :width]


class AtrousConv(nn.Module):
  """k x k convolution at dilation `rate`; at stride 1 the output keeps the input's size.

  Attributes:
    features: output channels.
    kernel_size: k (square kernels).
    rate: dilation rate r; 1 is an ordinary convolution.
    stride: spatial stride.
    use_bias: add a bias (False when a BatchNorm follows).
    dtype: computation dtype (parameters stay float32).
    kernel_init: kernel initialiser.
    impl: a ConvImpl, or an atrous impl name: 'dilation', 'space_to_batch' (see `atrous_conv`) or
      'auto' (`default_impl` for the default backend); the parameters are the same for all. A 1x1
      conv follows its pointwise lowering.
  """
  features: int
  kernel_size: int = 3
  rate: int = 1
  stride: int = 1
  use_bias: bool = False
  dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      2.0, 'fan_out', 'normal')
  impl: 'str | ConvImpl' = 'dilation'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, Cin] -> [B, H', W', features]."""
    k, impl = self.kernel_size, as_conv_impl(self.impl)
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
    if k == 1 and impl.lowering('pointwise') == 'dot':
      y = conv.pointwise_dot(x.astype(self.dtype), kernel.astype(self.dtype), self.stride)
    else:
      y = atrous_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.rate, self.stride,
                      impl=resolve_impl(impl.atrous, depthwise=False))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return y


class AtrousDepthwiseConv(nn.Module):
  """Depthwise k x k convolution at dilation `rate` (one filter per input channel).

  The kernel is [k, k, 1, C * depth_multiplier], the layout of `feature_group_count=C`.

  Attributes:
    kernel_size: k (square kernels).
    rate: dilation rate r; 1 is an ordinary convolution.
    stride: spatial stride.
    depth_multiplier: output channels per input channel.
    use_bias: add a bias.
    dtype: computation dtype (parameters stay float32).
    kernel_init: kernel initialiser.
    impl: a ConvImpl, or an atrous impl name (as AtrousConv's). With the 'taps' depthwise lowering
      (depth multiplier 1) the atrous impl is moot: taps read pixels `rate` apart directly.
  """
  kernel_size: int = 3
  rate: int = 1
  stride: int = 1
  depth_multiplier: int = 1
  use_bias: bool = False
  dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      1.0, 'fan_in', 'normal')
  impl: 'str | ConvImpl' = 'dilation'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H', W', C * depth_multiplier]."""
    k, channels, impl = self.kernel_size, x.shape[-1], as_conv_impl(self.impl)
    out = channels * self.depth_multiplier
    kernel = self.param('kernel', self.kernel_init, (k, k, 1, out), jnp.float32)
    if self.depth_multiplier == 1 and impl.lowering('depthwise') == 'taps':
      y = conv.depthwise_taps(x.astype(self.dtype), kernel.astype(self.dtype), self.rate, self.stride)
    else:
      y = atrous_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.rate, self.stride,
                      feature_group_count=channels, impl=resolve_impl(impl.atrous, depthwise=True))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (out,), jnp.float32).astype(self.dtype)
    return y

"""Fully connected CRF of DeepLab v1/v2 (Krähenbühl & Koltun 2011), mean-field inference in JAX.

Energy: unary -log P(x_i) from the network, plus Potts pairwise terms over all pixel pairs with
    k(i, j) = w1 exp(-|p_i - p_j|² / 2θα² - |I_i - I_j|² / 2θβ²) + w2 exp(-|p_i - p_j|² / 2θγ²).

The iteration follows densecrf / pydensecrf (`DenseCRF::inference`), which DeepLab used:
    Q⁰ = softmax(-U);  Qᵗ⁺¹ = softmax(-U + Σ_k w_k · N_k(K_k) Qᵗ),
where K_k is the Gaussian kernel *including* the self term (the lattice splats and slices each pixel
onto itself), D_k = diag(K_k 1), and N_k(K) is one of (CRFParams.normalization):
  * 'symmetric': D^{-1/2} K D^{-1/2}, pydensecrf's (densecrf 2.x's) default NORMALIZE_SYMMETRIC;
  * 'per_pixel': D^{-1} K, each pixel's message divided by its own (K 1)_i: the 2011 densecrf that
    DeepLab v1/v2 ran (PottsPotential's per_pixel_normalization; densecrf 2.x's NORMALIZE_AFTER).
`+ w Kq` is
PottsCompatibility(w), which multiplies the filtered message by -w before it is subtracted. That is
the Potts model: -w Σ_{l'≠l} (KQ)_{l'} differs from +w (KQ)_l by a per-pixel constant.

Two ways to apply K:
  * 'exact': the explicit N x N kernel, in row chunks (O(N²) time; small images and tests).
  * 'permutohedral': the permutohedral lattice (Adams et al. 2010) with densecrf's embedding,
    barycentric weights, hash-table neighbour lookup, [1/2, 1, 1/2] blur in d + 1 directions and
    slice scale. The hash table is built with whole-array scatters in a while_loop, so shapes are
    static and the whole thing jits (see the lattice section).
Both are pure jnp/lax (no host callbacks), differentiable w.r.t. the logits (CRF-as-RNN style).
"""
import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

# pydensecrf.utils.unary_from_softmax clips probabilities to [1e-5, 1] before -log.
_PROB_CLIP = 1e-5
METHODS = ('permutohedral', 'exact')
NORMALIZATIONS = ('symmetric', 'per_pixel')
# XLA:CPU's YNNPACK library fusions (on by default in jaxlib 0.10) take the mean-field update (slices,
# energy, softmax) into one library call that ran at ~1.6x the whole CRF's time of XLA's own loop
# fusions on the 2-core benchmark machine; model forward passes did not get slower without them.
_CPU_COMPILER_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}


def compiler_options() -> dict:
  """`jax.jit(..., compiler_options=...)` for programs that run the CRF, on the default backend."""
  return dict(_CPU_COMPILER_OPTIONS) if jax.default_backend() == 'cpu' else {}


@dataclasses.dataclass(frozen=True)
class CRFParams:
  """Dense CRF settings; defaults are DeepLab v2 (ResNet-101) values.

  Attributes:
    w1: weight of the bilateral (appearance) kernel.
    theta_alpha: spatial std of the bilateral kernel, pixels.
    theta_beta: colour std of the bilateral kernel, 0..255 intensity units.
    w2: weight of the Gaussian (smoothness) kernel.
    theta_gamma: spatial std of the Gaussian kernel, pixels.
    iterations: mean-field iterations.
    method: 'permutohedral' (fast, default) or 'exact' (O(N²), small images only).
    normalization: 'symmetric' (pydensecrf's D^-1/2 K D^-1/2) or 'per_pixel' (D^-1 K, the 2011
      densecrf of DeepLab v1/v2).
  """
  w1: float = 4.
  theta_alpha: float = 67.
  theta_beta: float = 3.
  w2: float = 3.
  theta_gamma: float = 3.
  iterations: int = 10
  method: str = 'permutohedral'
  normalization: str = 'symmetric'

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f'CRFParams.method={self.method!r}; expected one of {METHODS}.')
    if self.normalization not in NORMALIZATIONS:
      raise ValueError(f'CRFParams.normalization={self.normalization!r}; expected one of '
                       f'{NORMALIZATIONS}.')


def from_config(cfg: Any) -> CRFParams:
  """CRFParams from a `crf` ConfigDict (fields w1, theta_alpha, ..., iterations, method).

  Fields the block lacks keep their CRFParams defaults; `enabled` is the caller's business.
  """
  names = [f.name for f in dataclasses.fields(CRFParams)]
  return CRFParams(**{n: cfg[n] for n in names if n in cfg})


# ----------------------------------------------------------------------------- features and unary


def unary_from_logits(logits: jax.Array) -> jax.Array:
  """-log(clip(softmax(logits))) as pydensecrf's unary_from_softmax: [..., C] -> [..., C]."""
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.log(jnp.clip(probs, _PROB_CLIP, 1.))


def _positions(height: int, width: int) -> jax.Array:
  """(column, row) of each pixel in row-major order, densecrf's feature order: [H * W, 2]."""
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing='ij')
  return jnp.stack([cols.ravel(), rows.ravel()], axis=-1)


def gaussian_features(height: int, width: int, theta_gamma: float) -> jax.Array:
  """Smoothness-kernel features p / θγ: [H * W, 2]."""
  return _positions(height, width) / theta_gamma


def bilateral_features(image: jax.Array, theta_alpha: float, theta_beta: float) -> jax.Array:
  """Appearance-kernel features (p / θα, I / θβ) of image [H, W, 3]: [H * W, 5]."""
  height, width, _ = image.shape
  colours = image.reshape(-1, 3).astype(jnp.float32) / theta_beta
  return jnp.concatenate([_positions(height, width) / theta_alpha, colours], axis=-1)


# ----------------------------------------------------------------------------- exact kernel


def exact_filter(features: jax.Array, values: jax.Array, chunk: int = 1024) -> jax.Array:
  """K @ values with K_ij = exp(-|f_i - f_j|² / 2), self term included.

  Args:
    features: [N, d] kernel features (already divided by their θ).
    values: [N, C].
    chunk: rows of K built at a time; memory is O(chunk * N).

  Returns:
    [N, C].
  """
  n = features.shape[0]
  pad = (-n) % chunk
  rows = jnp.pad(features, ((0, pad), (0, 0))).reshape(-1, chunk, features.shape[1])
  sq_norm = jnp.sum(features * features, axis=-1)

  def rows_times_values(f_rows):
    # |a - b|² expanded keeps the chunk a matmul instead of a [chunk, N, d] difference tensor.
    dist = (jnp.sum(f_rows * f_rows, -1)[:, None] + sq_norm[None, :]
            - 2. * jnp.dot(f_rows, features.T, precision=lax.Precision.HIGHEST))
    kernel = jnp.exp(-0.5 * jnp.maximum(dist, 0.))
    return jnp.dot(kernel, values, precision=lax.Precision.HIGHEST)

  out = lax.map(rows_times_values, rows)
  return out.reshape(-1, values.shape[1])[:n]


# ----------------------------------------------------------------------------- permutohedral lattice
#
# densecrf finds lattice points and their blur neighbours with a serial hash table. Here the same
# table is built in parallel: every (point, vertex) entry probes its slot, free slots are claimed by
# scatter-min, and entries whose slot holds another key move one slot on (linear probing), all in a
# while_loop of whole-array steps. Shapes are static: the table has 2 N (d + 1) slots, and the lattice
# arrays have a static `capacity` of slots (see `_CAPACITY_TIERS`).

_EMPTY = np.int32(np.iinfo(np.int32).max)


class LatticePoints(NamedTuple):
  """Points splatted onto a permutohedral lattice, before the blur structure is sized.

  K = N (d + 1) entries, one per (point, simplex vertex); r-major so per-vertex slices are contiguous.

  Attributes:
    vertex: [d + 1, N] int32 lattice point id (0..M-1) of vertex r of point n.
    weight: [d + 1, N] float32 barycentric weight of that vertex.
    keys: [d, K] int32 integer lattice coordinates of each entry (the last one is implied).
    words: tuple of [K] uint32, keys packed 16 bits a coordinate, for hashing and equality.
    table: [T] int32 hash table of representative entries (_EMPTY where free).
    representative: [M_max] int32 entry holding lattice point m (valid for m < num_points).
    num_points: scalar int32 M.
    key_min: [d] int32 offset used in packing.
  """
  vertex: jax.Array
  weight: jax.Array
  keys: jax.Array
  words: tuple
  table: jax.Array
  representative: jax.Array
  num_points: jax.Array
  key_min: jax.Array


class Lattice(NamedTuple):
  """What splat, blur and slice need; S = capacity slots plus one always-empty slot at index S - 1.

  Attributes:
    vertex: [d + 1, N] int32 slot of vertex r of point n.
    weight: [d + 1, N] float32 barycentric weight.
    blur_prev: [d + 1, S] int32 neighbour at -step_j (S - 1 when absent), step_j = 1 - (d + 1) e_j.
    blur_next: [d + 1, S] int32 neighbour at +step_j (S - 1 when absent).
    splat_point: optional [P, S] int32, the points splatting onto each slot (padded with weight 0),
      for lattices known when tracing: the splat then gathers instead of scattering.
    splat_weight: optional [P, S] float32 barycentric weights matching splat_point.
  """
  vertex: jax.Array
  weight: jax.Array
  blur_prev: jax.Array
  blur_next: jax.Array
  splat_point: Any = None
  splat_weight: Any = None


def _elevate(features: jax.Array) -> jax.Array:
  """Embeds [N, d] features in the plane Σx = 0 of R^{d+1}, scaled as densecrf: [N, d + 1]."""
  d = features.shape[1]
  inv_std_dev = math.sqrt(2. / 3.) * (d + 1)
  scale = np.array([inv_std_dev / math.sqrt((i + 1) * (i + 2)) for i in range(d)], np.float32)
  scaled = features.astype(jnp.float32) * scale
  # Same summation order as densecrf, so rounding ties fall the same way.
  elevated = [None] * (d + 1)
  running = jnp.zeros(features.shape[:1], jnp.float32)
  for j in range(d, 0, -1):
    elevated[j] = running - j * scaled[:, j - 1]
    running = running + scaled[:, j - 1]
  elevated[0] = running
  return jnp.stack(elevated, axis=-1)


def _enclosing_simplex(elevated: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Nearest remainder-0 lattice point, coordinate ranks and barycentric weights (densecrf's).

  Works on per-coordinate [N] columns and returns coordinate-major [d + 1, N] arrays: on the XLA CPU
  backend, [N, d + 1] arrays with a minor dimension of 3..6 ran about 5x slower.

  Args:
    elevated: [N, d + 1].

  Returns:
    rem0 [d + 1, N] int32, rank [d + 1, N] int32 (a permutation of 0..d per point),
    barycentric [d + 1, N] float32 (row r: the weight of vertex r).
  """
  d = elevated.shape[1] - 1
  down = np.float32(1. / (d + 1))
  cols = [elevated[:, i] for i in range(d + 1)]
  rounded = [jnp.round(c * down) for c in cols]  # half to even, as SSE's _mm_round_ps
  rem0 = [r * (d + 1) for r in rounded]
  offset = [c - r for c, r in zip(cols, rem0)]
  total = sum(rounded).astype(jnp.int32)
  rank = [total] * (d + 1)
  for i in range(d):  # densecrf's tie-breaking: the later coordinate wins ties
    for j in range(i + 1, d + 1):
      first = (offset[i] < offset[j]).astype(jnp.int32)
      rank[i], rank[j] = rank[i] + first, rank[j] + 1 - first
  for i in range(d + 1):  # bring the point back onto the plane Σx = 0
    wrap = (d + 1) * ((rank[i] < 0).astype(jnp.int32) - (rank[i] > d).astype(jnp.int32))
    rank[i], rem0[i] = rank[i] + wrap, rem0[i] + wrap.astype(jnp.float32)
  v = [(c - r) * down for c, r in zip(cols, rem0)]
  # Vertex d - rank_i gains v_i and vertex d - rank_i + 1 loses it; vertex d + 1 wraps onto 0.
  gain = [sum(jnp.where(rank[i] == d - k, v[i], 0.) for i in range(d + 1)) for k in range(d + 2)]
  bary = [gain[k] - (gain[k - 1] if k else 0.) for k in range(d + 2)]
  bary[0] = bary[0] + 1. + bary[d + 1]
  return jnp.stack(rem0).astype(jnp.int32), jnp.stack(rank), jnp.stack(bary[:d + 1])


def _vertex_keys(rem0: jax.Array, rank: jax.Array) -> jax.Array:
  """First d integer coordinates of each point's d + 1 simplex vertices: [d, d + 1, N]."""
  d = rem0.shape[0] - 1
  # densecrf's canonical simplex: vertex r adds r, or r - (d + 1) where rank > d - r.
  return jnp.stack([jnp.stack([rem0[i] + r - (d + 1) * (rank[i] > d - r).astype(jnp.int32)
                               for r in range(d + 1)]) for i in range(d)])


def _pack(keys: jax.Array, key_min: jax.Array) -> tuple:
  """Packs [d, Q] keys two 16-bit coordinates per uint32 word (densecrf keeps keys as short).

  Offsets leave d + 1 units of room below so that blur-neighbour queries pack without wrapping.
  """
  d = keys.shape[0]
  shifted = [((keys[i] - key_min[i] + (d + 1)) & 0xFFFF).astype(jnp.uint32) for i in range(d)]
  return tuple(shifted[i] << 16 | shifted[i + 1] if i + 1 < d else shifted[i]
               for i in range(0, d, 2))


def _hash(words: tuple, table_size: int) -> jax.Array:
  """Slot in [0, table_size) of packed keys (table_size a power of two): [Q] int32."""
  h = jnp.full(words[0].shape, 0x811C9DC5, jnp.uint32)
  for w in words:
    h = (h ^ w) * jnp.uint32(0x9E3779B1)
    h = h ^ (h >> 15)
  return (h & jnp.uint32(table_size - 1)).astype(jnp.int32)


def _same_key(words: tuple, entries: jax.Array, query: tuple) -> jax.Array:
  """Whether the stored entries hold the query keys: [Q] bool."""
  same = jnp.ones(entries.shape, bool)
  for w, q in zip(words, query):
    same = same & (jnp.take(w, entries, mode='clip') == q)
  return same


def _hash_insert(words: tuple, table_size: int) -> tuple[jax.Array, jax.Array]:
  """Inserts all K keys; returns the table [T] and each entry's representative entry [K]."""
  num = words[0].shape[0]
  start = _hash(words, table_size)
  index = jnp.arange(num, dtype=jnp.int32)

  def probe(state):
    step, table, found = state
    slot = (start + step) & (table_size - 1)
    pending = found < 0
    # Entries with equal keys share start and step, so they claim and find the same slot.
    claim = jnp.where(pending & (table[slot] == _EMPTY), index, _EMPTY)
    table = table.at[slot].min(claim)
    owner = table[slot]
    hit = pending & _same_key(words, owner, words)
    return step + 1, table, jnp.where(hit, owner, found)

  table = jnp.full((table_size,), _EMPTY, jnp.int32)
  state = (0, table, jnp.full((num,), -1, jnp.int32))
  _, table, found = lax.while_loop(lambda s: jnp.any(s[2] < 0), probe, state)
  return table, found


def _hash_find(words: tuple, table: jax.Array, query: tuple) -> jax.Array:
  """Entry holding each query key, or -1 where absent: [Q] int32."""
  table_size = table.shape[0]
  start = _hash(query, table_size)

  def probe(state):
    step, found = state
    owner = table[(start + step) & (table_size - 1)]
    pending = found == -2
    found = jnp.where(pending & (owner == _EMPTY), -1, found)
    return step + 1, jnp.where(pending & _same_key(words, owner, query), owner, found)

  state = (0, jnp.full(start.shape, -2, jnp.int32))
  return lax.while_loop(lambda s: jnp.any(s[1] == -2), probe, state)[1]


def splat_points(features: jax.Array) -> LatticePoints:
  """Simplex vertices, barycentric weights and distinct lattice points of features [N, d]."""
  n, d = features.shape
  rem0, rank, weight = _enclosing_simplex(_elevate(features))
  keys = _vertex_keys(rem0, rank).reshape(d, -1)
  num_entries = keys.shape[1]
  key_min = jnp.min(keys, axis=1)
  words = _pack(keys, key_min)
  table, found = _hash_insert(words, 1 << int(2 * num_entries - 1).bit_length())
  is_rep = found == jnp.arange(num_entries)
  dense = jnp.cumsum(is_rep, dtype=jnp.int32) - 1
  representative = jnp.zeros_like(dense).at[jnp.where(is_rep, dense, -1)].set(
      jnp.arange(num_entries, dtype=jnp.int32), mode='drop')
  return LatticePoints(dense[found].reshape(d + 1, n), weight, keys, words, table,
                       representative, dense[-1] + 1, key_min)


def blur_structure(points: LatticePoints, capacity: int) -> Lattice:
  """Blur neighbours of the first `capacity` lattice points, looked up as densecrf does.

  Points with ids >= capacity are dropped (they map to the empty slot); callers pick a capacity
  >= points.num_points.
  """
  dp1 = points.vertex.shape[0]
  d = dp1 - 1
  empty = capacity  # index of the always-empty slot
  slots = jnp.arange(capacity)
  rep = jnp.take(points.representative, slots, mode='clip')
  keys = jnp.take(points.keys, rep, axis=1)  # [d, capacity]
  valid = slots < points.num_points
  steps = np.ones((d, dp1), np.int32) - (d + 1) * np.eye(d, dp1, dtype=np.int32)
  query = (keys[:, None, :] + steps[:, :, None]).reshape(d, -1)  # [d, (d + 1) capacity]
  entry = _hash_find(points.words, points.table, _pack(query, points.key_min))
  # Entry e is (vertex e // N of point e % N), so its lattice point id is vertex.ravel()[e].
  found = jnp.take(points.vertex.reshape(-1), entry, mode='clip')
  nxt = jnp.where(entry >= 0, found, empty).reshape(dp1, -1)
  nxt = jnp.where(valid[None] & (nxt < capacity), nxt, empty)
  nxt = jnp.concatenate([nxt, jnp.full((dp1, 1), empty, jnp.int32)], axis=1)
  prev = jnp.full_like(nxt, empty)
  src = jnp.broadcast_to(jnp.arange(capacity + 1, dtype=jnp.int32), nxt.shape)
  # The empty slot's own entry must not be overwritten: send it past the end (dropped).
  target = jnp.where(nxt == empty, capacity + 1, nxt)
  prev = prev.at[jnp.arange(dp1)[:, None], target].set(src, mode='drop')
  vertex = jnp.where(points.vertex < capacity, points.vertex, empty)
  return Lattice(vertex, points.weight, prev, nxt)


def lattice_filter(lattice: Lattice, values: jax.Array) -> jax.Array:
  """Approximate K @ values (Gaussian kernel, self term included) by splat, blur and slice.

  Per-vertex loops keep every temporary at [N, C]; a fused [N, d + 1, C] product was several
  times slower on the XLA CPU backend.

  Args:
    lattice: over the same N points.
    values: [N, C].

  Returns:
    [N, C].
  """
  dp1 = lattice.vertex.shape[0]
  if lattice.splat_point is None:
    grid = jnp.zeros((lattice.blur_next.shape[1], values.shape[1]), values.dtype)
    for r in range(dp1):
      grid = grid.at[lattice.vertex[r]].add(lattice.weight[r][:, None] * values)
  else:  # XLA's CPU scatter is ~10x slower per row than its gather
    grid = sum(w[:, None] * jnp.take(values, i, axis=0, mode='clip')
               for i, w in zip(lattice.splat_point, lattice.splat_weight))
  grid = grid.at[-1].set(0.)  # dropped points' slot: must stay empty through the blur
  gather = lambda index: jnp.take(grid, index, axis=0, mode='clip')
  for j in range(dp1):
    grid = grid + 0.5 * (gather(lattice.blur_prev[j]) + gather(lattice.blur_next[j]))
    # The empty slot is already 0 here (its neighbours are itself); re-zeroing it is an in-place
    # dynamic-update-slice, which XLA does not fuse into the gathers that read the grid. Without
    # it XLA:CPU fuses each blur step into the next step's or the slice's gathers and recomputes
    # it per gathered row (3x the reads; the mean-field step ran 1.6x slower). lax.
    # optimization_barrier does not stop that: XLA:CPU removes barriers before fusion.
    grid = grid.at[-1].set(0.)
  out = sum(lattice.weight[r][:, None] * gather(lattice.vertex[r]) for r in range(dp1))
  # densecrf's "magic" slice scale; it cancels in either normalisation anyway.
  return out / (1. + 2. ** -(dp1 - 1))


# Bilateral lattices get one of these capacities (fractions of the N (d + 1) worst case), the
# smallest that holds all their points, through lax.switch: the blur costs O(capacity) per
# iteration, and natural images use a few percent of the worst case.
_CAPACITY_TIERS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.)


_MIN_CAPACITY = 4096  # below this the blur is cheap; fewer branches compile faster


def _capacities(num_entries: int) -> list[int]:
  """Distinct static capacities for a lattice of num_entries = N (d + 1) entries, ascending."""
  floor = min(num_entries, _MIN_CAPACITY)
  return sorted({max(floor, int(math.ceil(t * num_entries))) for t in _CAPACITY_TIERS})


@functools.lru_cache(maxsize=16)
def _gaussian_lattice(height: int, width: int, theta_gamma: float) -> Lattice:
  """Smoothness-kernel lattice: depends only on the image size, so it is built once, eagerly."""
  with jax.ensure_compile_time_eval():
    points = splat_points(gaussian_features(height, width, theta_gamma))
    lattice = blur_structure(points, int(points.num_points))
  lattice = Lattice(*(np.asarray(a) for a in lattice))
  return lattice._replace(**_splat_lists(lattice.vertex, lattice.weight, lattice.blur_next.shape[1]))


def _splat_lists(vertex: np.ndarray, weight: np.ndarray, slots: int) -> dict:
  """For each slot, the points that splat onto it, padded to the largest count (numpy, static)."""
  n = vertex.shape[1]
  flat = vertex.ravel()
  order = np.argsort(flat, kind='stable')
  counts = np.bincount(flat, minlength=slots)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank_in_slot = np.arange(flat.size) - starts[flat[order]]
  point = np.zeros((counts.max(), slots), np.int32)
  wts = np.zeros((counts.max(), slots), np.float32)
  point[rank_in_slot, flat[order]] = order % n
  wts[rank_in_slot, flat[order]] = weight.ravel()[order]
  return dict(splat_point=point, splat_weight=wts)


# ----------------------------------------------------------------------------- mean field


def _normalized(filter_fn: Callable[[jax.Array], jax.Array], valid: jax.Array,
                normalization: str = 'symmetric'):
  """The normalised kernel product over valid pixels, with D = diag(K 1):
  'symmetric' D^{-1/2} K D^{-1/2} (pydensecrf's NORMALIZE_SYMMETRIC) or 'per_pixel' D^{-1} K (the
  2011 densecrf's per-pixel normalisation, densecrf 2.x's NORMALIZE_AFTER).

  Args:
    filter_fn: [N, C] -> [N, C] kernel product.
    valid: [N, 1] float32, 1 for image pixels and 0 for padding. Padding is zeroed on both sides of
      the product (and left out of D), so image pixels get the messages of the unpadded image.
    normalization: 'symmetric' or 'per_pixel'.
  """
  norm = filter_fn(valid) + 1e-20
  if normalization == 'per_pixel':
    inv = valid / norm
    return lambda q: inv * filter_fn(valid * q)
  inv_sqrt = valid * lax.rsqrt(norm)
  return lambda q: inv_sqrt * filter_fn(inv_sqrt * q)


def mean_field(unary: jax.Array, filters: Sequence[tuple[float, Callable]],
               iterations: int) -> jax.Array:
  """densecrf's inference loop.

  Args:
    unary: [N, C] energies -log P.
    filters: (Potts weight w, normalised kernel filter [N, C] -> [N, C]) pairs.
    iterations: mean-field steps.

  Returns:
    [N, C] marginals Q.
  """

  def step(q, _):
    energy = -unary
    for weight, fn in filters:
      energy = energy + weight * fn(q)
    return jax.nn.softmax(energy, axis=-1), None

  q, _ = lax.scan(step, jax.nn.softmax(-unary, axis=-1), None, length=iterations)
  return q


def _exact_crf(unary: jax.Array, image: jax.Array, valid: jax.Array,
               params: CRFParams) -> jax.Array:
  """Mean field with explicit kernels: unary [N, C], image [H, W, 3], valid [N, 1] -> [N, C]."""
  height, width, _ = image.shape
  feats = [(params.w1, bilateral_features(image, params.theta_alpha, params.theta_beta)),
           (params.w2, gaussian_features(height, width, params.theta_gamma))]
  filters = [(w, _normalized(functools.partial(exact_filter, f), valid, params.normalization))
             for w, f in feats]
  return mean_field(unary, filters, params.iterations)


def _lattice_crf(unary: jax.Array, image: jax.Array, valid: jax.Array,
                 params: CRFParams) -> jax.Array:
  """Mean field with permutohedral kernels: unary [N, C], image [H, W, 3], valid [N, 1] -> [N, C]."""
  height, width, _ = image.shape
  smooth = _normalized(
      functools.partial(lattice_filter, _gaussian_lattice(height, width, params.theta_gamma)), valid,
      params.normalization)
  points = splat_points(bilateral_features(image, params.theta_alpha, params.theta_beta))
  caps = _capacities(points.keys.shape[1])

  def run(capacity):
    appearance = _normalized(
        functools.partial(lattice_filter, blur_structure(points, capacity)), valid, params.normalization)
    return mean_field(unary, [(params.w1, appearance), (params.w2, smooth)], params.iterations)

  tier = jnp.sum(points.num_points > jnp.asarray(caps[:-1], jnp.int32))
  return lax.switch(tier, [functools.partial(run, c) for c in caps])


def dense_crf_single(logits: jax.Array, image: jax.Array, params: CRFParams,
                     valid: jax.Array | None = None) -> jax.Array:
  """Dense CRF of one image: logits [H, W, C], image [H, W, 3] (0..255) -> probabilities [H, W, C].

  valid: optional [H, W] bool, False on padding (see dense_crf).
  """
  height, width, classes = logits.shape
  if image.shape != (height, width, 3):
    raise ValueError(f'dense_crf: image shape {image.shape} does not match logits {logits.shape}; '
                     'expected [H, W, 3] at the logits resolution (resize the logits first).')
  unary = unary_from_logits(logits).reshape(-1, classes)
  valid = (jnp.ones((height * width, 1), jnp.float32) if valid is None
           else valid.reshape(-1, 1).astype(jnp.float32))
  crf = _exact_crf if params.method == 'exact' else _lattice_crf
  return crf(unary, image, valid, params).reshape(height, width, classes)


def dense_crf(logits: jax.Array, images: jax.Array, params: CRFParams = CRFParams(),
              valid: jax.Array | None = None) -> jax.Array:
  """Fully connected CRF on a batch; `jit_dense_crf()` jits it (params static, compiler_options()).

  Images run one after another (lax.map): each picks its own lattice capacity through lax.switch,
  which vmap would turn into computing every branch.

  Args:
    logits: [B, H, W, C] network scores (unary = -log softmax, as DeepLab fed pydensecrf).
    images: [B, H, W, 3] uint8 or float RGB in 0..255, same H, W as logits.
    params: CRFParams.
    valid: optional [B, H, W] bool, False on padding. Padded pixels neither send messages nor count
      in the normalisation, so image pixels are refined as in the unpadded image: exactly on the
      'exact' path, up to the lattice approximation on the permutohedral one (padding adds lattice
      vertices that the blur passes through). Padded pixels keep softmax(logits).

  Returns:
    [B, H, W, C] marginal probabilities after params.iterations mean-field steps.
  """
  if valid is None:
    valid = jnp.ones(logits.shape[:3], bool)
  return lax.map(lambda args: dense_crf_single(*args[:2], params, args[2]), (logits, images, valid))


def jit_dense_crf():
  """dense_crf jitted with params static and compiler_options(): call as f(logits, images, params)."""
  return jax.jit(dense_crf, static_argnums=2, compiler_options=compiler_options())

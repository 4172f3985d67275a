"""User paths (data, workdirs, checkpoints, eval outputs, predict inputs and outputs, exports, converted
weights, sweep folders) reach files only through etils.epath, so gs:// works on a pod and the tests'
local paths go through the same code a bucket does: no local-only call in the package outside an
allow-list, and a fake gs:// bucket written and read back by the modules that serve those paths."""
import json
import os
import re

from etils.epath import gpath, testing
import jax
import numpy as np
from PIL import Image
import pytest

from deeplab_jax import checkpoint, run_config
from deeplab_jax.convert import tf1, torch_file
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import export, predict
from deeplab_jax.experiments import results
from tests.conftest import tiny_config

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'deeplab_jax')
# Calls that only reach the local disk: a gs:// path fails in them, or (os.path.abspath) becomes
# CWD/gs:/bucket. Image.open and np.save/np.load may take a file object opened through epath.
LOCAL_ONLY = re.compile(r'\bos\.(listdir|makedirs|walk|replace|rename|remove|unlink|'
                        r'path\.(isfile|isdir|exists))\(|\bos\.path\.abspath\((?!__file__)|'
                        r'(?<![.\w])open\(|\bglob\.glob\(|\bImage\.open\((?!io\.BytesIO)|'
                        r'\bnp\.(save|load)\((?!f\b)')
EVERY_LINE = ('',)
# What legitimately stays local: {module or folder under deeplab_jax/: fragments of its allowed lines}.
ALLOWED = {
    # Measurements of this machine: peer datasets read by PyTorch code, --json result files, /proc.
    'benchmarks/': EVERY_LINE,
    # The packaged atrous_defaults.json beside the module (and its rewrite by the atrous benchmark).
    'ops/atrous.py': ('open(path or DEFAULTS_PATH',),
    # The peer implementations' checkout (../shared/peers), imported as code.
    'peers.py': EVERY_LINE,
    # Sweep and config files are Python modules that importlib and config_flags import from local files.
    'experiments/points.py': ('os.path.isfile(path)', 'os.path.isfile(point_file)'),
    # The kernel's transparent-huge-page mode, read from /sys before the process restarts.
    'host.py': ('open(_THP_MODE)',),
    # The one place a local path is made absolute (a URI is left as it is).
    'paths.py': ('os.path.abspath(path)',),
    # Docstring examples of a user's own code.
    'segmenter.py': ("PIL.Image.open('photo.jpg')",),
    'evaluate/export.py': ("with open('model.jax', 'rb')",),
}


def local_only_calls() -> tuple[list[str], list[str]]:
  """('module: line' of each local-only call outside ALLOWED, the ALLOWED entries that match nothing)."""
  found, used = [], set()
  for folder, _, files in os.walk(PACKAGE):
    for file in sorted(f for f in files if f.endswith('.py')):
      module = os.path.relpath(os.path.join(folder, file), PACKAGE).replace(os.sep, '/')
      with open(os.path.join(folder, file)) as f:
        for line in f:
          if not LOCAL_ONLY.search(line):
            continue
          allowed = [(prefix, fragment) for prefix, fragments in ALLOWED.items() if module.startswith(prefix)
                     for fragment in fragments if fragment in line]
          used.update(allowed)
          if not allowed:
            found.append(f'{module}: {line.strip()}')
  unused = [f'{p}: {f!r}' for p, fragments in ALLOWED.items() for f in fragments if (p, f) not in used]
  return found, unused


def test_user_paths_reach_files_only_through_epath():
  found, unused = local_only_calls()
  assert found == []
  assert unused == []  # an allowance whose call is gone goes too


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """'gs://bucket', its objects kept under tmp_path/bucket by a fake epath backend. The working directory
  is tmp_path/cwd, where a local-only call on a gs:// path writes (CWD/gs:/bucket/...): it stays empty."""
  store, cwd = tmp_path / 'bucket', tmp_path / 'cwd'
  store.mkdir()
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  monkeypatch.setattr(gpath, '_is_tf_installed', lambda: False)  # else gs:// takes TF's backend, unfaked
  local = lambda p: os.fspath(p).replace('gs://bucket', str(store), 1)  # noqa: E731
  remote = lambda p: os.fspath(p).replace(str(store), 'gs://bucket', 1)  # noqa: E731
  one = lambda fn, path, *args, **kwargs: fn(local(path), *args, **kwargs)  # noqa: E731
  two = lambda fn, path, target, *args, **kwargs: fn(local(path), local(target), *args, **kwargs)  # noqa: E731
  fakes = {name: one for name in ('exists', 'isdir', 'listdir', 'makedirs', 'mkdir', 'open', 'remove',
                                   'rmtree', 'stat')}
  fakes.update(copy=two, rename=two, replace=two,
               glob=lambda fn, pattern: [remote(p) for p in fn(local(pattern))],
               walk=lambda fn, top, **kwargs: ((remote(r), d, f) for r, d, f in fn(local(top), **kwargs)))
  with testing.mock_epath(**fakes):
    yield store
  assert os.listdir(cwd) == []


def test_a_gs_workdir_is_written_and_read_back(bucket):
  config = tiny_config()
  checkpoint.prepare_workdir('gs://bucket/run', config)
  assert run_config.load('gs://bucket/run').model.resnet.width == 8
  (bucket / 'run' / 'checkpoints' / '5').mkdir(parents=True)
  (bucket / 'run' / 'checkpoints' / '7.orbax-checkpoint-tmp-1').mkdir()
  assert checkpoint.unfinished_steps('gs://bucket/run/checkpoints') == [7]
  config.train.num_steps, config.model.resnet.width = 9, 4
  run_config.check_resume('gs://bucket/run', config, accept=True, log=lambda _: None)
  changes = json.loads((bucket / 'run' / run_config.CHANGES_FILE).read_text())
  assert list(changes[0]['changed']) == ['model.resnet.width']
  assert sorted(p.name for p in (bucket / 'run').iterdir()) == ['checkpoints', 'config.json',
                                                                  run_config.CHANGES_FILE]
  (bucket / 'empty').mkdir()
  with pytest.raises(UserError, match='No checkpoint in gs://bucket/empty'):
    checkpoint.read_variables('gs://bucket/empty')


def test_gs_exports_and_predictions(bucket):
  exported = jax.export.export(jax.jit(lambda x: x + 1))(jax.ShapeDtypeStruct((2,), np.float32))
  export.save(exported, 'gs://bucket/run/export/add.jax', {'step': 3})
  np.testing.assert_array_equal(export.load('gs://bucket/run/export/add.jax').call(np.zeros(2, np.float32)),
                                [1, 1])
  assert sorted(p.name for p in (bucket / 'run' / 'export').iterdir()) == ['add.jax', 'add.jax.json']
  (bucket / 'images').mkdir()
  Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(bucket / 'images' / 'a.png')
  (bucket / 'images' / 'notes.txt').write_text('not an image')
  inputs = predict.list_inputs('gs://bucket/images')
  assert inputs == ['gs://bucket/images/a.png', 'gs://bucket/images/notes.txt']
  config = tiny_config()
  config.predict.scores = 'probabilities'
  classes = config.data.num_classes
  probs_fn = lambda x: np.full(x.shape[:-1] + (classes,), 1 / classes, np.float32)  # noqa: E731
  lines = []
  assert predict.predict_files(probs_fn, inputs, 'gs://bucket/out', config, lines.append) == [
      'gs://bucket/out/a.png']
  assert sorted(p.name for p in (bucket / 'out').iterdir()) == ['a.npy', 'a.png', 'a_overlay.png']
  assert np.load(bucket / 'out' / 'a.npy').shape == (6, 8, classes)
  assert any('notes.txt' in line for line in lines if line.startswith('warning'))


def test_gs_sweep_results_and_converted_weights(bucket):
  (bucket / 'sweep' / 'p' / 'eval').mkdir(parents=True)
  (bucket / 'sweep' / 'sweep.json').write_text(json.dumps({'points': []}))
  (bucket / 'sweep' / 'p' / 'config.json').write_text(json.dumps({'data': {'eval_split': 'val'},
                                                                 'train': {'num_steps': 4}}))
  (bucket / 'sweep' / 'p' / 'eval' / 'val_step4.json').write_text(json.dumps({'miou': 0.5}))
  assert results.load_manifest('gs://bucket/sweep') == {'points': []}
  assert results.final_eval('gs://bucket/sweep/p') == {'miou': 0.5}
  (bucket / 'zoo' / 'model').mkdir(parents=True)
  for name in ('model.ckpt.index', 'model.ckpt.data-00000-of-00001'):
    (bucket / 'zoo' / 'model' / name).write_bytes(b'')
  assert tf1.checkpoint_prefix('gs://bucket/zoo') == 'gs://bucket/zoo/model/model.ckpt'
  assert tf1.checkpoint_prefix('gs://bucket/zoo/model/model.ckpt.index') == 'gs://bucket/zoo/model/model.ckpt'
  torch = pytest.importorskip('torch')
  torch.save({'model': {'w': torch.ones(2)}}, bucket / 'w.pth')
  assert torch_file.load_state_dict('gs://bucket/w.pth')['w'].tolist() == [1.0, 1.0]

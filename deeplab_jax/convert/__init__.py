"""Converts a local PyTorch checkpoint into deeplab_jax variables and a run folder to evaluate or
fine-tune from.

  python -m deeplab_jax.convert --source=FILE.pth|FILE.safetensors --kind=KIND \
      --config=configs/pretrained/torchvision_deeplabv3.py:resnet101 --workdir=W [--allow_partial]

Modules:
  kinds: the --kinds (the PyTorch model a state_dict comes from) and the backbones each holds.
  torchvision, smp: each peer's module correspondences (PyTorch prefix -> deeplab_jax path).
  entries: the correspondences both peers share (conv + BN, separable conv + BN, ASPP).
  torch_file: reading a .pth / .safetensors state_dict.
  match: placing tensors on the config's model's variables, refusing mismatches, assembling the tree.
  architecture: notes on config fields that make the function differ from the peer's own config.
  workdir: writing W/checkpoints/0, W/converted, W/converted.json and W/config.json.
  __main__: the command line.
"""

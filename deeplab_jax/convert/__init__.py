"""Converts a local checkpoint (PyTorch, or the official TF1 DeepLab's) into deeplab_jax variables and a
run folder to evaluate or fine-tune from.

  python -m deeplab_jax.convert --source=FILE.pth|FILE.safetensors --kind=KIND \
      --config=configs/pretrained/torchvision_deeplabv3.py:resnet101 --workdir=W [--allow_partial]
  python -m deeplab_jax.convert --source=deeplabv3_pascal_train_aug --kind=tf_deeplab \
      --config=configs/pretrained/tf_deeplab.py:xception65_coco_voc_trainaug --workdir=W

Modules:
  kinds: the --kinds (the model a checkpoint comes from), how each is read, and the backbones each holds.
  torchvision, smp, timm, tf_deeplab: each source's module correspondences (its names -> deeplab_jax
    paths).
  entries: the correspondences torchvision and smp share (conv + BN, separable conv + BN, ASPP).
  torch_file, tf1: reading a .pth / .safetensors state_dict, a TF1 checkpoint.
  match: placing tensors on the config's model's variables, refusing mismatches, assembling the tree.
  architecture: notes on config fields that make the function differ from the source's own config.
  workdir: writing W/checkpoints/0, W/converted, W/converted.json and W/config.json.
  __main__: the command line.
"""

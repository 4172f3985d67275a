"""Benchmarks, each a command run from the repository root (results and their readings: BENCHMARKS.md).

    step        train-step and inference throughput, memory and MFU of a config's model, fake batches
                  python -m deeplab_jax.benchmarks.step --config=configs/v3_voc.py --batch=16 --size=513
    profile     where that step's time goes: the compiled program's ops as the JAX profiler timed them,
                per kind (conv, dot, transposes, pads, ...) and the slowest ops with their layers
                  python -m deeplab_jax.benchmarks.profile --config=configs/quickstart.py --batch=16 --size=97
    torch_step  the same step against the PyTorch peer of the same architecture (torchvision
                DeepLabV3 ResNet-50/101 and MobileNetV3-Large, smp DeepLabV3Plus), interleaved
                  python -m deeplab_jax.benchmarks.torch_step --arch=resnet50 --batch=4 --size=208
    conv_ops    single depthwise, 1x1 and 3x3 convs, forward + backward (or --passes=fwd): the library
                conv, ops.conv's lowerings and torch; --write_defaults records the faster lowerings
                  python -m deeplab_jax.benchmarks.conv_ops [--passes=fwd] [--write_defaults]
    atrous      the atrous-conv implementations at DeepLab's shapes; --write_defaults records the
                fastest for this platform in ops/atrous_defaults.json (what impl='auto' picks)
                  python -m deeplab_jax.benchmarks.atrous --repeats=3 [--write_defaults]
    crf         the JAX dense CRF against pydensecrf2: time and agreement, permutohedral vs exact
                  python -m deeplab_jax.benchmarks.crf [--colour_noise=8] [--profile]
    pipeline    tf.data training-pipeline throughput in images/s on synthetic VOC-sized JPEGs
                  python -m deeplab_jax.benchmarks.pipeline --config=configs/quickstart.py --threads=1,2
    peer_train  a from-scratch training run against torchvision's deeplabv3_mobilenet_v3_large on real
                data (CamVid), alternating in chunks: both val mIoU, per-class IoU, images/s ratio
                  python -m deeplab_jax.benchmarks.peer_train --config=configs/camvid.py --steps=1500
    soak        host memory (RSS) over a long real training run: its samples, slope and floor growth
                  python -m deeplab_jax.benchmarks.soak --steps=3000 --every=100
    save_memory host memory per checkpoint save (RSS, traced Python memory, the sites that keep it)
                  python -m deeplab_jax.benchmarks.save_memory --saves=200

Each module defines its flags only when run as a command (`define_flags`), so that they can be imported
side by side (by tests, or torch_step importing step) without their flag names clashing. Only pipeline,
peer_train and soak (through the training loop) import TensorFlow.
"""

"""DeepLab models: layers, backbones and heads, assembled per config by `deeplab.build_model`."""

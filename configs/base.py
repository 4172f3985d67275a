"""Every field of a deeplab_jax run, with the paper's default (DeepLabv3, PASCAL VOC 2012).

Experiment configs import this module, call `get_config()` and override a few fields. Command-line
overrides: `--config.train.batch_size=8`. An unknown key is an error.
"""
import ml_collections

# PASCAL VOC 2012 class names, index = label value.
VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
               'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, dropout and the training data order all derive from it

  config.data = data = ml_collections.ConfigDict()
  data.dataset = 'voc'  # voc | cityscapes | ade20k | folder (any labelled images) | synthetic | tfds
  data.root = 'data/VOCdevkit/VOC2012'  # folder holding JPEGImages/, <label_dir>/, ImageSets/Segmentation/
  data.label_dir = 'SegmentationClass'  # label PNGs (class index per pixel); folder dataset: labels folder
  data.image_dir = 'images'  # folder dataset only: images folder under root (labels: label_dir)
  data.sbd_root = 'data/benchmark_RELEASE/dataset'  # SBD (train.txt, val.txt, cls/*.mat) for train_aug
  data.train_split = 'train_aug'  # train_aug = VOC train + SBD train/val - VOC val: 10,582 images
  data.eval_split = 'val'  # 1,449 images
  data.expect_counts = True  # require the official split sizes (voc, cityscapes, ade20k); False for subsets
  # stored label value -> class: '' = the dataset's own; identity | cityscapes | ade20k | reduce_zero_label
  # (0 = ignore, 1..N -> 0..N-1), or a mapping such as '0:0,255:1' (ranges 'a-b:c-d', '*:ignore')
  data.label_map = ''
  data.skip_bad_examples = False  # True: a bad file becomes an all-ignore example, counted, not an error
  data.num_classes = 21
  data.class_names = VOC_CLASSES
  data.ignore_label = 255  # pixels with this label count in neither loss nor metrics
  # training crop: a side (square) or (height, width); OS * k + 1 with corner-aligned resizing
  data.crop_size = ml_collections.FieldReference(513, field_type=object)
  # eval images are padded (not resized) to this canvas: a side (square) or (height, width), OS * k + 1;
  # VOC's largest side is 500
  data.eval_size = ml_collections.FieldReference(513, field_type=object)
  # 'pad': whole images padded to eval_size (a larger one is an error); 'resize': each image resized,
  # keeping its ratio, to fit eval_size and its probabilities resized back to the label (deeplab2);
  # 'slide': eval_size (height x width) windows overlapping by eval_overlap (mmsegmentation). Both run
  # eval.batch_size canvases (images or windows) at a time. Metrics: original labels.
  data.eval_protocol = 'pad'
  # 'pad' protocol: 'canvas' pads every image to eval_size (the official protocol: the image-pooling
  # branch averages over the canvas); 'batch' pads each batch only to its largest image, rounded up to
  # predict.pad_multiple buckets (at most eval_size): less compute, a few compiles, one host only
  data.eval_padding = 'canvas'
  data.eval_overlap = 1 / 3  # 'slide': share of a window its neighbour repeats (mmseg: 512 stride 341)
  data.min_scale = 0.5  # random scale augmentation: min_scale..max_scale in steps of scale_step
  data.max_scale = 2.0
  data.scale_step = 0.25
  data.flip = True  # random left-right flip
  data.mean = (123.675, 116.28, 103.53)  # per-channel RGB mean (ImageNet); images are padded with the mean
  data.std = (58.395, 57.12, 57.375)  # per-channel RGB std (ImageNet, torchvision convention)
  data.normalization = 'imagenet'  # 'imagenet': (x - mean) / std below; 'inception': [-1, 1] (Xception)
  # RGB triples per class for pictures and for decoding colour-coded RGB label masks (row k = stored
  # value k); () = the PASCAL VOC colour map
  data.palette = ()
  data.num_parallel_calls = -1  # tf.data parallelism; -1 = AUTOTUNE
  data.num_threads = 0  # > 0: a private tf.data thread pool of this size; 0 = TensorFlow's shared one
  # data.dataset='tfds': any prepared tfds segmentation dataset (data.tfds_builder writes ours)
  data.tfds_name = ''  # e.g. 'deeplab_segmentation/my_data' or a catalogue name such as 'cityscapes'
  data.tfds_data_dir = ''  # where it was prepared (local or gs://); '' = tfds' default
  data.tfds_image_key = 'image'  # the feature holding the RGB image
  data.tfds_label_key = 'label'  # the feature holding the label (stored values, as data.label_map reads)
  data.synthetic = synthetic = ml_collections.ConfigDict()
  synthetic.num_train = 400  # images generated for the 'train' split
  synthetic.num_val = 80  # images generated for the 'val' split
  synthetic.min_size = 120  # image sides drawn uniformly in [min_size, max_size]
  synthetic.max_size = 180
  synthetic.seed = 0  # the same seed always writes the same files

  config.model = model = ml_collections.ConfigDict()
  model.backbone = 'resnet101'  # resnet50 | resnet101 | xception65 | mobilenetv2 | mobilenetv3_large | vgg16
  model.output_stride = 16  # training output stride: 8, 16 or 32
  model.eval_output_stride = 0  # output stride at evaluation; 0 = the training one
  model.multi_grid = (1, 2, 4)  # rate multipliers of the last stage's units; () for none
  model.resnet = resnet = ml_collections.ConfigDict()
  resnet.blocks = ()  # units per stage; () = the depth's standard (3, 4, 23, 3) for resnet101
  resnet.width = 64  # first stage's bottleneck width (64 in every published ResNet)
  resnet.stem = 'torchvision'  # 'torchvision' (7x7 conv) or 'beta' (three 3x3 convs, DeepLab's)
  resnet.dilation_style = 'deeplab'  # 'deeplab': whole stage dilated; 'torchvision': first unit not
  # 'torchvision': stride in a stage's first unit (torchvision weights); 'slim': official resnet_v1_beta,
  # stride in the last unit of blocks 1-3, subsampled identity shortcut, decoder tap block1/unit_2/conv3
  resnet.layout = 'torchvision'
  model.xception = xception = ml_collections.ConfigDict()
  xception.middle_units = 16  # middle-flow units (16 in Xception-65; fewer only for quick tests)
  model.mobilenet = mobilenet = ml_collections.ConfigDict()
  mobilenet.width_multiplier = 1.0  # MobileNetV2/V3 channel multiplier (DeepLabv3+ uses 1.0; 0.5 also common)
  # MobileNetV2 at width != 1: 'official' (DeepLab's: channels unrounded, expansions to multiples of 8) or
  # 'torchvision' (everything to multiples of 8, torchvision's width_mult); the same at width 1.0
  mobilenet.channel_rounding = 'official'
  model.head = 'aspp'  # 'aspp' (v3, v3+) | 'largefov' (v1: one fc6-fc7 branch) | 'aspp_l' (v2: summed)
  model.aspp_rates = (6, 12, 18)  # 3x3 branch rates at output stride 16; rescaled for other strides
  model.aspp_features = 256  # channels of each ASPP branch and of the projection
  model.image_pooling = True  # ASPP image-level branch
  model.dropout_rate = 0.1  # dropout after the ASPP projection (torchvision and smp: 0.5)
  model.aspp_separable = False  # atrous depthwise-separable 3x3 ASPP branches (v3+ Xception: True)
  model.separable_depthwise_bn = True  # BN+ReLU between depthwise and pointwise (DeepLab); smp: False
  model.aspp_post_conv = False  # 3x3 conv 256 + BN + ReLU after the projection (torchvision, smp)
  model.decoder = False  # DeepLabv3+ decoder on the stride-4 features
  model.decoder_low_level_features = 48  # channels of the 1x1 conv on the low-level features
  model.decoder_convs = 2  # 3x3 convs of aspp_features after the concat (smp uses 1)
  model.decoder_separable = False  # separable decoder convs (v3+ Xception: True)
  # Corner-aligned resizing (official DeepLab, TF align_corners=True: logits, decoder, image pyramid,
  # eval scales) for sides OS * k + 1; False: half-pixel (PyTorch's align_corners=False, peers only).
  model.upsample_align_corners = True
  model.aux_head = False  # torchvision's aux FCN head, on ResNet stage 3 or MobileNetV3's stride-8 features
  model.aux_dropout_rate = 0.1  # dropout inside the auxiliary head
  model.largefov_rate = 12  # v1 LargeFOV fc6 rate, at output stride 8
  model.asppl_rates = (6, 12, 18, 24)  # v2 ASPP-L branch rates, at output stride 8
  model.fc_features = 1024  # fc6/fc7 channels of LargeFOV/ASPP-L; 0 = 3x3 conv to logits (v2 ResNet)
  model.fc_dropout_rate = 0.5  # dropout after fc6 and fc7
  model.msc_scales = ()  # v2 multi-scale inputs, e.g. (1.0, 0.75, 0.5): shared weights, max-fused
  # 'logits': max over the scales on the logit grid, then upsample (official TF, v2 Caffe);
  # 'input': each scale upsampled to the input size, then max
  model.msc_fuse_at = 'logits'
  model.bn_momentum = 0.9997  # heads' (ASPP, decoder, aux) BatchNorm moving-average decay, as DeepLab's
  model.bn_epsilon = 1e-5  # heads' BatchNorm epsilon, as DeepLab's
  # Backbone BatchNorm; 0 = the backbone's default (models/backbones.py), the official DeepLab code's:
  # ResNet 0.95 / 1e-5, Xception-65 0.9997 / 1e-3, MobileNetV2 0.997 / 1e-3 (MobileNetV3: 0.99 / 1e-3)
  model.backbone_bn_momentum = 0.0
  model.backbone_bn_epsilon = 0.0
  model.fine_tune_batch_norm = True  # False freezes BatchNorm (moving statistics, no update)
  # how fresh weights are drawn (models/init.py): 'deeplab' (the modules' own) or 'torchvision'
  model.init_scheme = 'deeplab'
  model.dtype = 'float32'  # compute dtype: float32 | bfloat16 (parameters stay float32)
  model.atrous_impl = 'auto'  # atrous convs: auto (measured per platform) | dilation | space_to_batch
  model.depthwise_impl = 'auto'  # depthwise convs: auto (measured per platform) | grouped | taps
  model.pointwise_impl = 'auto'  # 1x1 convs: auto (measured per platform) | conv | dot
  model.remat = 'none'  # 'backbone': recompute each backbone unit in the backward pass (less memory)

  config.train = train = ml_collections.ConfigDict()
  train.batch_size = 16  # global batch, split over all devices; BatchNorm statistics are over all of it
  train.num_steps = 30_000
  train.base_lr = 0.007
  train.lr_power = 0.9  # poly schedule: base_lr * (1 - step / num_steps) ** lr_power
  train.momentum = 0.9
  train.weight_decay = 1e-4  # L2 on conv kernels (not on BatchNorm or biases); 4e-5 for Xception
  train.decay_depthwise = False  # L2 on depthwise kernels too; the official code decays none
  # False: loss on the logit grid against labels nearest-subsampled to it (v1/v2's label_shrink,
  # official --upsample_logits=False); True: logits upsampled to the labels
  train.upsample_logits = True
  train.aux_loss_weight = 0.5  # weight of the aux head's loss (torchvision's reference recipe: 0.5)
  train.log_every = 50  # steps between log lines and TensorBoard points
  train.checkpoint_every = 1000  # steps between checkpoints (one is also saved at the end)
  train.keep_checkpoints = 3  # most recent checkpoints kept
  train.eval_every = 0  # steps between evaluations during training; 0 = only at the end
  train.keep_best_checkpoint = True  # also keep the checkpoint with the best eval mIoU (eval_every runs)
  train.grad_accum_steps = 1  # micro-batches per step: batch_size / grad_accum_steps run at a time
  train.warmup_steps = 0  # linear warmup from 0 to base_lr before the poly schedule; 0 = none
  train.last_layer_lr_multiplier = 1.0  # LR multiplier of the parameters under train.last_layers
  # 'classifier' (the layers that output class scores, whichever the head), 'head' (the whole head: the
  # official code's last_layers_contain_logits_only=False) or module paths such as 'head/aspp'
  train.last_layers = ('classifier',)
  train.bias_lr_multiplier = 2.0  # LR multiplier of conv biases (official TF code and Caffe prototxts: 2)
  train.batch_norm_lr_multiplier = 1.0  # LR multiplier of BatchNorm scales/offsets (v2 Caffe: 0, frozen)
  train.class_weights = ()  # per-class loss weights (one per class); () = all 1
  train.top_k_percent = 100.0  # hard pixel mining: % of the hardest pixels in the loss
  # 'batch': official, top-k of the flattened batch (ignored pixels counted), mean over the non-zero
  # kept losses; 'image': top-k of each image's labelled pixels (independent of batch splits)
  train.top_k_scope = 'batch'
  train.hard_mining_steps = 0  # steps ramping the kept % from 100 to top_k_percent; 0 = from the start
  train.init_checkpoint = ''  # checkpoint folder (a run's checkpoints/ or one step in it) to start from
  train.reinit_head_on_mismatch = True  # re-initialise train.last_layers whose shapes differ from it
  # > 0: at the last step, BatchNorm statistics averaged over this many more training batches with the
  # final weights replace the moving averages in the last checkpoint (train/precise_bn.py); 0 = official
  train.precise_bn_batches = 0
  train.profile_steps = (0, 0)  # (start, stop): trace steps start..stop-1 to WORKDIR/profile; (0, 0) = off

  config.parallelism = 'jit'  # 'jit': one step jitted over a device mesh; 'pmap': the pmap front

  config.eval = evaluation = ml_collections.ConfigDict()
  evaluation.batch_size = 8  # global eval batch
  evaluation.step = 0  # checkpoint step that --mode=eval/predict/export restores; 0 = the latest
  evaluation.scales = (1.0,)  # input scales, softmax averaged at input size; MS: 0.5..1.75 step 0.25
  evaluation.flip = False  # also average the left-right flipped input (DeepLabv3: +0.32 mIoU)
  evaluation.extra_settings = ()  # more 'scales[+flip]' settings --mode=eval reports, e.g. '0.5,1,1.5+flip'
  evaluation.num_images = 4  # (image, label, prediction) examples drawn per evaluation

  config.crf = crf = ml_collections.ConfigDict()  # dense CRF post-processing (DeepLab v1/v2)
  crf.enabled = False  # refine eval/predict probabilities; eval then reports with and without CRF
  crf.w1 = 4.  # bilateral (appearance) kernel weight; DeepLab v2 ResNet-101 values throughout
  crf.theta_alpha = 67.  # bilateral spatial std, pixels (v1 searched 30..100)
  crf.theta_beta = 3.  # bilateral colour std, 0..255 RGB units (v1 searched 3..6)
  crf.w2 = 3.  # Gaussian (smoothness) kernel weight
  crf.theta_gamma = 3.  # Gaussian spatial std, pixels
  crf.iterations = 10  # mean-field iterations
  crf.method = 'permutohedral'  # 'permutohedral' (fast) or 'exact' (O(N²): tiny images only)
  # 'symmetric': pydensecrf's D^-1/2 K D^-1/2; 'per_pixel': D^-1 K, the 2011 densecrf DeepLab v1/v2 ran
  crf.normalization = 'symmetric'

  config.predict = predict = ml_collections.ConfigDict()
  predict.input = ''  # --mode=predict: an image file or a folder of images
  predict.output_dir = ''  # label PNGs and overlays go here; '' = WORKDIR/predict
  predict.max_size = 1024  # images with a longer side are predicted by overlapping tiles
  predict.tile_size = 513  # tile side (DeepLab's eval crop, OS * k + 1)
  predict.tile_overlap = 0.33  # fraction of a tile shared with its neighbour
  predict.tile_batch = 4  # tiles per model call (memory grows with it; 1 = one at a time)
  # whole images are padded up to sides of pad_multiple * k (+ 1 with model.upsample_align_corners,
  # so the feature grids end on the last pixel): 64 keeps OS 16 aligned at eval scales in steps of 0.25
  predict.pad_multiple = 64
  # True: k rounded up to 1, 2, 3, 4, 6, 8, 12, 16, ... (< 1.5x per side), so a folder of mixed sizes
  # compiles a few shapes instead of one per size; False: the smallest k
  predict.bucket_sizes = True
  predict.scores = ''  # also <name>.npy per image, float32 [H, W, C]: 'probabilities' | 'logits'; '' = none
  predict.label_ids = False  # label PNGs hold the dataset's stored values (Cityscapes label ids), not classes

  config.export = export = ml_collections.ConfigDict()
  export.path = ''  # --mode=export writes the jax.export file here (.onnx: ONNX); '' = WORKDIR/export/...
  export.image_size = 513  # exported input is uint8 [B, image_size, image_size, 3]; OS * k + 1
  # 0 = symbolic: any side pad_multiple * k (+ 1 with model.upsample_align_corners)
  export.height = 0  # rectangular input: [B, height, width, 3]; 0 = image_size
  export.width = 0  # 0 = image_size
  export.batch_size = 0  # fixed batch size; 0 = symbolic (any batch)
  export.output = 'labels'  # 'labels' (int32 [B, H, W]) or 'probabilities' (float32 [B, H, W, C])
  export.platforms = ()  # e.g. ('cpu', 'cuda'); () = the platform this runs on
  return config

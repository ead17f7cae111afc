/// What a node computes. A closed set: every concern (shape inference, execution, each writer) is one
/// exhaustive `switch`, so adding a case makes the compiler list every place to update. Ops not
/// interpreted are kept as `opaque` so they survive a round trip.
///
/// Granularity is the Keras layer / ONNX node of the CNN op set; a fused activation is an attribute.
public enum Op: Equatable, Sendable {
    case dense(DenseAttributes)
    case conv(ConvAttributes)
    case depthwiseConv(DepthwiseConvAttributes)
    case separableConv(SeparableConvAttributes)
    case convTranspose(ConvTransposeAttributes)
    case pool(PoolAttributes)
    case globalPool(GlobalPoolAttributes)
    case batchNormalization(BatchNormalizationAttributes)
    case layerNormalization(LayerNormalizationAttributes)
    /// Keras MultiHeadAttention (OpAttributes+Attention.swift): query, value, optional key and mask.
    case multiHeadAttention(MultiHeadAttentionAttributes)
    /// Keras EinsumDense (OpAttributes+EinsumDense.swift): one weight multiplication as an einsum.
    case einsumDense(EinsumDenseAttributes)
    /// Keras UnitNormalization: unit L2 norm over some axes.
    case unitNormalization(UnitNormalizationAttributes)
    /// Keras Attention and AdditiveAttention: query, value, optional key.
    case attention(AttentionAttributes)
    /// Keras GroupNormalization; ONNX InstanceNormalization is its one-group-per-channel case.
    case groupNormalization(GroupNormalizationAttributes)
    case activation(Activation)
    /// Parametric ReLU with a learned slope (`alpha` parameter) per element, shared along some axes.
    case prelu(PReLUAttributes)
    case dropout(DropoutAttributes)
    case flatten(FlattenAttributes)
    case reshape(ReshapeAttributes)
    case permute(PermuteAttributes)
    case zeroPadding(SpatialPaddingAttributes)
    case cropping(SpatialPaddingAttributes)
    case upSampling(UpSamplingAttributes)
    /// n-ary elementwise combination with broadcasting (Keras merge layers).
    case elementwise(ElementwiseOperation)
    case concatenate(ConcatenateAttributes)
    /// `x * scale + offset`.
    case rescaling(RescalingAttributes)
    /// Keras's Resizing, CenterCrop and RandomCrop: a window of the image resampled to a fixed size
    /// (RandomCrop's random window belongs to training).
    case resizing(ResizingAttributes)
    /// `(x - mean) / sqrt(variance)`, statistics held as parameters (`mean`, `variance`).
    case normalization(NormalizationAttributes)
    case embedding(EmbeddingAttributes)
    /// Keras's Masking: zeroes the steps whose features all equal the mask value (OpAttributes+Masking.swift).
    case masking(MaskingAttributes)
    /// SimpleRNN, LSTM, GRU, alone or as Bidirectional; ONNX RNN, LSTM, GRU.
    case recurrent(RecurrentAttributes)
    /// Inception-ResNet's residual: `inputs[0] + scale * inputs[1]`.
    case scaledResidual(ScaledResidualAttributes)
    /// ConvNeXt's LayerScale: `x * gamma`, gamma a learned per-channel parameter.
    case layerScale(LayerScaleAttributes)
    /// Reorders axes: output axis `i` is input axis `permutation[i]` (the batch axis included).
    case transpose(TransposeAttributes)
    /// Identity at inference; drops whole residual branches during training (ConvNeXt).
    case stochasticDepth(DropoutAttributes)
    /// Keras's random augmentation and noise layers (RandomFlip, RandomRotation, GaussianNoise...):
    /// the identity at inference.
    case augmentation(AugmentationAttributes)
    case identity
    /// An ONNX op Keras has no layer for (Gemm, MatMul, Where, Gather...): one case, so a concern that
    /// only Keras layers have (Keras export, Keras's layer names) handles them together, and a concern
    /// every op has (shape inference, execution, ONNX export) switches over `ONNXOperation` in turn.
    case onnx(ONNXOperation)
    case opaque(OpaqueAttributes)

    /// The op's name in tables: Keras's class names where one exists.
    public var typeName: String {
        switch self {
        case .dense: "Dense"
        case .conv(let a): a.rank == 1 ? "Conv1D" : a.rank == 3 ? "Conv3D" : "Conv2D"
        case .depthwiseConv(let a): a.rank == 1 ? "DepthwiseConv1D" : "DepthwiseConv2D"
        case .separableConv(let a): a.rank == 1 ? "SeparableConv1D" : "SeparableConv2D"
        case .convTranspose(let a): a.rank == 1 ? "Conv1DTranspose" : "Conv2DTranspose"
        case .pool(let a): (a.kind == .max ? "MaxPooling" : "AveragePooling") + "\(a.rank)D"
        case .globalPool(let a): (a.kind == .max ? "GlobalMaxPooling" : "GlobalAveragePooling") + "\(a.rank)D"
        case .batchNormalization: "BatchNormalization"
        case .layerNormalization: "LayerNormalization"
        case .multiHeadAttention: "MultiHeadAttention"
        case .einsumDense: "EinsumDense"
        case .unitNormalization: "UnitNormalization"
        case .attention(let a): a.kerasClass
        case .groupNormalization: "GroupNormalization"
        case .activation(let a):
            switch a {
            case .relu: "ReLU"
            case .leakyRelu: "LeakyReLU"
            case .elu: "ELU"
            case .softmax: "Softmax"
            default: "Activation"
            }
        case .prelu: "PReLU"
        case .dropout: "Dropout"
        case .flatten: "Flatten"
        case .reshape: "Reshape"
        case .permute: "Permute"
        case .zeroPadding(let a): "ZeroPadding\(a.padding.count)D"
        case .cropping(let a): "Cropping\(a.padding.count)D"
        case .upSampling(let a): "UpSampling\(a.size.count)D"
        case .elementwise(let operation): operation.typeName
        case .concatenate: "Concatenate"
        case .rescaling: "Rescaling"
        case .resizing(let a): a.kind.rawValue
        case .normalization: "Normalization"
        case .embedding: "Embedding"
        case .masking: "Masking"
        case .recurrent(let a): a.bidirectional == nil ? a.layerName : "Bidirectional"
        case .scaledResidual: "CustomScaleLayer"
        case .layerScale: "LayerScale"
        case .transpose: "Transpose"
        case .stochasticDepth: "StochasticDepth"
        case .augmentation(let a): a.kind.rawValue
        case .identity: "Identity"
        case .onnx(let operation): operation.typeName
        case .opaque(let a): a.type
        }
    }
}

/// ONNX ops with no exact Keras-layer equivalent, as the ONNX reader brings them into the IR
/// (attributes in OpAttributes+ONNX.swift). A closed set like `Op`: a new case makes the compiler
/// list every place that must handle it.
public enum ONNXOperation: Equatable, Sendable {
    /// A constant tensor: its one parameter (role `value`) is the output. How an ONNX initializer or
    /// Constant that feeds an ordinary operand (Add's bias, Where's fill value) enters the graph.
    case constant(ConstantAttributes)
    /// `alpha * op(A) @ op(B) + beta * C`; B and C are parameters (`kernel`, `bias`) when constant.
    case gemm(GemmAttributes)
    /// Numpy matmul of two inputs, or of the input and a `kernel` parameter.
    case matMul
    case unary(UnaryOperation)
    /// Elementwise comparisons and logic with broadcasting; the result is bool.
    case comparison(ComparisonOperation)
    /// ONNX Where: `condition ? inputs[1] : inputs[2]` with broadcasting.
    case select
    case reduce(ReduceAttributes)
    /// ONNX Gather along `axis`: inputs data and indices.
    case gather(GatherAttributes)
    case cast(CastAttributes)
    case squeeze(AxesAttributes)
    case unsqueeze(AxesAttributes)
    case slice(SliceAttributes)
    /// One input, several outputs.
    case split(SplitAttributes)
    case pad(PadAttributes)
    case clip(ClipAttributes)
    case resize(ResizeAttributes)
    case localResponseNormalization(LocalResponseNormalizationAttributes)
    /// Softmax of ONNX before opset 13: over all axes from `axis` on, as one flattened axis.
    case coercedSoftmax(CoercedSoftmaxAttributes)
    /// The input's lengths (some axes of them) as an int64 vector.
    case shape(ShapeOfAttributes)
    /// Numpy broadcasting of `inputs[0]` to the shape held by `inputs[1]` (a computed shape).
    case expand
    /// `inputs[0]` repeated `inputs[1][axis]` times along each axis.
    case tile
    /// ONNX Mod: the remainder of `inputs[0] / inputs[1]`, with broadcasting.
    case mod(ModAttributes)
    /// ONNX Range: `start, start + delta, ...` below `limit`, the three scalars computed at run time.
    case range
    /// ONNX ConstantOfShape: a tensor of the lengths `inputs[0]` holds, filled with one value.
    case constantOfShape(ConstantOfShapeAttributes)
    /// ONNX Trilu: the upper or lower triangle of the last two axes (`inputs[1]` is k when computed).
    case trilu(TriluAttributes)
    /// ONNX Slice with bounds computed at run time (inputs data, starts, ends, axes?, steps?).
    case computedSlice(ComputedSliceAttributes)
    /// ONNX Pad with pads computed at run time (inputs data, pads, then the fill value when computed).
    case computedPad(ComputedPadAttributes)
    /// ONNX ScatterND: data, indices, updates.
    case scatterND(ScatterNDAttributes)
    /// ONNX GatherND: index tuples pick slices (swin v2's position-bias table, dynamo's advanced indexing).
    case gatherND(GatherNDAttributes)
    /// ONNX GatherElements along `axis`: data and indices of the output's shape.
    case gatherElements(GatherAttributes)
    /// ONNX Einsum of one or two computed operands.
    case einsum(EinsumAttributes)
    /// ONNX Attention (opset 23; OpAttributes+Transformer.swift): Q, K, V, mask?, past key and value?.
    case scaledDotProductAttention(ScaledDotProductAttentionAttributes)
    /// ONNX RMSNormalization and Keras's layer: the input, and the scale when computed (else parameter `scale`).
    case rmsNormalization(RMSNormalizationAttributes)
    /// ONNX RotaryEmbedding: x, cos cache, sin cache, position ids?.
    case rotaryEmbedding(RotaryEmbeddingAttributes)
    /// ONNX ArgMax and ArgMin.
    case argExtreme(ArgExtremeAttributes)
    /// ONNX CumSum along a constant axis.
    case cumulativeSum(CumulativeSumAttributes)
    /// ONNX DepthToSpace and SpaceToDepth: channel blocks to pixel blocks and back (torch's PixelShuffle).
    case depthSpace(DepthSpaceAttributes)
    /// Reshape of `inputs[0]` to the shape `inputs[1]` holds, computed at run time.
    case computedReshape(ComputedReshapeAttributes)
    /// ONNX BatchNormalization (inference) whose scale, bias, mean and variance are inputs computed at
    /// run time, channels at axis 1: `(x - mean) / sqrt(variance + epsilon) * scale + bias`.
    case computedBatchNormalization(ComputedNormalizationAttributes)
    /// ONNX InstanceNormalization whose scale and bias are inputs computed at run time.
    case computedInstanceNormalization(ComputedNormalizationAttributes)

    /// The op's ONNX type name.
    public var typeName: String {
        switch self {
        case .constant: "Constant"
        case .gemm: "Gemm"
        case .matMul: "MatMul"
        case .unary(let operation): operation.typeName
        case .comparison(let operation): operation.typeName
        case .select: "Where"
        case .reduce(let a): a.kind.typeName
        case .gather: "Gather"
        case .cast: "Cast"
        case .squeeze: "Squeeze"
        case .unsqueeze: "Unsqueeze"
        case .slice: "Slice"
        case .split: "Split"
        case .pad: "Pad"
        case .clip: "Clip"
        case .resize: "Resize"
        case .localResponseNormalization: "LRN"
        case .coercedSoftmax(let a): a.logarithm ? "LogSoftmax" : "Softmax"
        case .shape: "Shape"
        case .expand: "Expand"
        case .tile: "Tile"
        case .mod: "Mod"
        case .range: "Range"
        case .constantOfShape: "ConstantOfShape"
        case .trilu: "Trilu"
        case .computedSlice: "Slice"
        case .computedPad: "Pad"
        case .scatterND: "ScatterND"
        case .gatherND: "GatherND"
        case .gatherElements: "GatherElements"
        case .einsum: "Einsum"
        case .scaledDotProductAttention: "Attention"
        case .rmsNormalization: "RMSNormalization"
        case .rotaryEmbedding: "RotaryEmbedding"
        case .argExtreme(let a): a.largest ? "ArgMax" : "ArgMin"
        case .cumulativeSum: "CumSum"
        case .depthSpace(let a): a.toDepth ? "SpaceToDepth" : "DepthToSpace"
        case .computedReshape: "Reshape"
        case .computedBatchNormalization: "BatchNormalization"
        case .computedInstanceNormalization: "InstanceNormalization"
        }
    }
}

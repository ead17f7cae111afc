import ScionIR
import ScionRuntime

/// What keras.applications' `preprocess_input` functions do to raw 0-255 RGB pixels before a
/// pretrained model sees them, by mode (imagenet_utils.py) and by the application module that picks
/// the mode (`keras.applications.resnet50.preprocess_input` is caffe). The arithmetic is float32 in
/// NumPy's order, so the arrays equal Keras's bit for bit or within a rounding.
public enum InputPreprocessing: String, Sendable, CaseIterable {
    /// Nothing: the arrays are fed as they are (also EfficientNet, ConvNeXt, MobileNetV3: those
    /// models rescale inside, so their `preprocess_input` returns its input).
    case none
    /// RGB to BGR, then the ImageNet mean pixel (BGR 103.939, 116.779, 123.68) subtracted, no scaling.
    case caffe
    /// `x / 127.5 - 1`: pixels to [-1, 1].
    case tf
    /// `x / 255`, then each channel less the ImageNet mean (0.485, 0.456, 0.406) over its standard
    /// deviation (0.229, 0.224, 0.225).
    case torch

    /// keras.applications modules by name, with the mode their `preprocess_input` uses.
    public static let families: [(name: String, mode: InputPreprocessing)] = [
        ("convnext", .none), ("densenet", .torch), ("efficientnet", .none), ("efficientnet_v2", .none),
        ("inception_resnet_v2", .tf), ("inception_v3", .tf), ("mobilenet", .tf), ("mobilenet_v2", .tf),
        ("mobilenet_v3", .none), ("nasnet", .tf), ("resnet", .caffe), ("resnet50", .caffe), ("resnet_v2", .tf),
        ("vgg16", .caffe), ("vgg19", .caffe), ("xception", .tf),
    ]

    /// A mode (`caffe`, `tf`, `torch`, `none`) or a keras.applications module name (`resnet50`).
    public init?(named name: String) {
        let key = name.lowercased()
        if let mode = InputPreprocessing(rawValue: key) {
            self = mode
        } else if let family = Self.families.first(where: { $0.name == key }) {
            self = family.mode
        } else {
            return nil
        }
    }

    /// Every name `init(named:)` takes, for messages and help.
    public static var acceptedNames: [String] { allCases.map(\.rawValue) + families.map(\.name) }

    /// Float32 values as NumPy holds the Python constants Keras writes (a double rounded once).
    static let caffeMean: [Float] = [103.939, 116.779, 123.68].map { Float($0 as Double) }
    static let torchMean: [Float] = [0.485, 0.456, 0.406].map { Float($0 as Double) }
    static let torchStandardDeviation: [Float] = [0.229, 0.224, 0.225].map { Float($0 as Double) }

    /// `x` preprocessed; `channelAxis` is where the colour channels are (the last axis for Keras's
    /// channels-last arrays, 1 for an ONNX model's NCHW ones). Caffe and torch need 3 channels there;
    /// `what` names the data in the error otherwise.
    public func apply(to x: RuntimeTensor, channelAxis: Int, what: String) throws -> RuntimeTensor {
        var result = x
        switch self {
        case .none:
            return x
        case .tf:
            let divisor = Float(127.5 as Double)
            for index in result.data.indices { result.data[index] = result.data[index] / divisor - 1 }
            return result
        case .caffe, .torch:
            guard x.shape.indices.contains(channelAxis), x.shape[channelAxis] == 3 else {
                throw ScionError(file: what, "--preprocess \(rawValue) needs 3 colour channels (RGB) on axis \(channelAxis); "
                    + "the samples have shape \(Array(x.shape.dropFirst()))")
            }
        }
        // Channel c of element i: (i / inner) % 3, with `inner` the elements after the channel axis.
        let inner = x.shape[(channelAxis + 1)...].reduce(1, *)
        let source = x.data
        if self == .caffe {
            for index in source.indices {
                let channel = (index / inner) % 3
                // RGB to BGR: output channel c reads input channel 2 - c, then loses the BGR mean.
                let mirrored = index + (2 - 2 * channel) * inner
                result.data[index] = source[mirrored] - Self.caffeMean[channel]
            }
        } else {
            let scale = Float(255.0 as Double)
            for index in source.indices {
                let channel = (index / inner) % 3
                result.data[index] = (source[index] / scale - Self.torchMean[channel]) / Self.torchStandardDeviation[channel]
            }
        }
        return result
    }

    /// `apply(to:channelAxis:what:)` on one channels-last image in place (`channels` values a pixel,
    /// 3 for caffe and torch: check with `apply` on an empty batch first): the same float32
    /// operations in the same order, so the same bits. An image folder's decoding tasks run it on
    /// each image as it is resized, in parallel, instead of one pass over each batch that copies it.
    public func applyInPlace(channelsLast values: UnsafeMutableBufferPointer<Float>, channels: Int) {
        switch self {
        case .none:
            return
        case .tf:
            let divisor = Float(127.5 as Double)
            for index in values.indices { values[index] = values[index] / divisor - 1 }
        case .caffe:
            precondition(channels == 3, "caffe preprocessing needs 3 channels")
            let mean = Self.caffeMean
            for pixel in stride(from: 0, to: values.count, by: 3) {
                // RGB to BGR, each less its mean.
                let red = values[pixel]
                values[pixel] = values[pixel + 2] - mean[0]
                values[pixel + 1] = values[pixel + 1] - mean[1]
                values[pixel + 2] = red - mean[2]
            }
        case .torch:
            precondition(channels == 3, "torch preprocessing needs 3 channels")
            let scale = Float(255.0 as Double), mean = Self.torchMean, deviation = Self.torchStandardDeviation
            for index in values.indices {
                let channel = index % 3
                values[index] = (values[index] / scale - mean[channel]) / deviation[channel]
            }
        }
    }

    /// Where the colour channels of a model's first input are. Keras models are channels-last. An
    /// ONNX model is channels-first by convention, but tf2onnx's keep Keras's NHWC input (a Transpose
    /// inside), so for ONNX the declared input shape decides when exactly one of axis 1 and the last
    /// axis has 3 (or 1) entries; otherwise the convention does.
    public static func channelAxis(of graph: Graph, rank: Int) -> Int {
        guard graph.layout == .channelsFirst, rank >= 3 else { return rank - 1 }
        if let dimensions = graph.inputs.first?.shape?.dimensions, dimensions.count == rank {
            let colour: (Int?) -> Bool = { $0 == 3 || $0 == 1 }
            if colour(dimensions[rank - 1]) && !colour(dimensions[1]) { return rank - 1 }
        }
        return 1
    }

    /// The layer near the model's input that already scales pixels (a Rescaling or Normalization,
    /// possibly after augmentation layers), found by walking from the first input while each value has
    /// one reader; nil when there is none. Such a model preprocesses itself: Keras's own recipe puts
    /// Rescaling(1/255) first, and EfficientNet and ConvNeXt hold theirs.
    public static func preprocessingLayer(in graph: Graph) -> String? {
        guard var value = graph.inputs.first?.name else { return nil }
        for _ in 0..<graph.nodes.count {
            let readers = graph.nodes.filter { $0.inputs.contains(value) }
            guard readers.count == 1, let node = readers.first, let next = node.outputs.first else { return nil }
            if case .rescaling = node.op { return node.name }
            if case .normalization = node.op { return node.name }
            // Layers that leave pixel values as they are at inference pass the walk on.
            if case .augmentation = node.op { value = next; continue }
            if case .identity = node.op { value = next; continue }
            if case .dropout = node.op { value = next; continue }
            if case .resizing = node.op { value = next; continue }
            return nil
        }
        return nil
    }
}

import ScionIR

/// The passes that bring any graph a reader produces into the executor's one internal form, and the
/// way back for the tensors training changes. ScionRuntime does not import the passes: it checks
/// that a graph is in this form and refuses it naming the node when not; the `Scion` library
/// (`Model.executor()`, `FineTuning`) runs this lowering before it and `writeBack` after training.
///
/// ```
///  model as read (Keras, channels-last)        lowered (what the executor and trainer run)
///
///  image (N,32,32,3)                           image (N,32,32,3)   same interface
///  conv   Conv2D HWIO                          image/to_channels_first  Transpose
///  dw     DepthwiseConv2D         ─1─▶ ─2─▶    conv   Conv2D OIHW
///  sep    SeparableConv2D                      dw     Conv2D groups C, OIHW
///  ...                                         sep/depthwise, sep   grouped + 1x1 Conv2D, OIHW
///
///  1 GroupedConvolutionPass   2 ChannelsFirstLayoutPass (a graph read from ONNX is left as it is)
/// ```
public struct ExecutorLowering {
    /// The lowering; it has no options.
    public init() {}

    /// The passes, in order.
    public var passes: [any GraphPass] { [GroupedConvolutionPass(), ChannelsFirstLayoutPass()] }

    /// Runs `passes` on `graph`, in order.
    public func run(_ graph: inout Graph) throws {
        for pass in passes { try pass.run(&graph) }
    }

    /// The model as given with `trained` (tensors of the lowered graph, float32 by name) written into
    /// it in its own layout and shapes; every other tensor keeps its storage, byte for byte, so frozen
    /// weights are bit-identical in every file written afterwards.
    /// `positions`: from `sourcePositions` computed before training (so a tensor that cannot go back
    /// fails before the work, not after); nil computes them here.
    public func writeBack(_ trained: [String: [Float]], into model: Graph, positions known: [String: [Int32]?]? = nil) throws -> Graph {
        let positions = try known ?? sourcePositions(of: trained.keys.sorted(), in: model)
        var result = model
        for (name, values) in trained {
            guard var parameter = result.parameters[name], let positions = positions[name] else { continue }
            var ordered = values
            if let positions {
                guard positions.count == values.count else {
                    throw PassError(pass: "write-back", subject: name, "has \(values.count) trained values for \(positions.count) elements")
                }
                for (index, position) in positions.enumerated() { ordered[Int(position)] = values[index] }
            }
            parameter.storage = TensorStorage(bytes: ordered.withUnsafeBytes { Array($0) })
            parameter.dtype = .float32
            result.parameters[name] = parameter
        }
        return result
    }

    /// Where each element of the lowered tensors sits in the model's layout (nil when nothing moves):
    /// the lowering run once more on the model with those tensors replaced by their own element
    /// indices (int32, the same width as float32), so every permutation the passes make is undone
    /// exactly, whatever it is.
    public func sourcePositions(of names: [String], in model: Graph) throws -> [String: [Int32]?] {
        var result: [String: [Int32]?] = [:]
        if model.layout == .channelsFirst {
            for name in names { result[name] = .some(nil) }
            return result
        }
        var probe = model
        for name in names {
            guard var parameter = probe.parameters[name] else {
                throw PassError(pass: "write-back", subject: name, "is trained but not a tensor of the model as given; it cannot be written back")
            }
            let indices = (0..<Int32(parameter.elementCount)).map { $0 }
            parameter.dtype = .int32
            parameter.storage = TensorStorage(bytes: indices.withUnsafeBytes { Array($0) })
            probe.parameters[name] = parameter
        }
        try run(&probe)
        for name in names {
            guard let bytes = try probe.parameters[name]?.storage.bytes(keep: false) else {
                throw PassError(pass: "write-back", subject: name, "lost by the layout pass")
            }
            let positions = bytes.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
            result[name] = positions.enumerated().allSatisfy { Int32($0.offset) == $0.element } ? .some(nil) : positions
        }
        return result
    }
}

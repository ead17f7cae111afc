import Dispatch
import Foundation
import ScionIR
import Synchronization

/// How weights get from the file into the executor: each parameter read once, float32 values
/// straight into the array the executor keeps (no byte array beside it), convolution kernels in
/// their final order and folded in that same pass, and, for an inference executor, the graph's hold
/// on the file's bytes let go once it has them, so the executor is the only holder of the weights
/// while it runs.
extension Executor {
    /// What preparing the weights leaves the executor: every parameter it reads as float32, by name,
    /// convolution kernels already in the order their kernels read and scaled by the
    /// BatchNormalizations folded into them.
    struct PreparedWeights {
        var values: [String: [Float]] = [:]
        /// Kernels in a channels-last form (`KernelForm`, all but `channelsFirst`), by parameter name:
        /// read only by the kernels of their nodes, and mapped from a weights cache when there is one.
        var kernels: [String: WeightValues] = [:]
        /// BatchNormalization nodes folded into the convolution before them.
        var folded: Set<String> = []
        /// Biases a folded BatchNormalization gave to convolutions that had none, by node name.
        var foldedBiases: [String: [Float]] = [:]
        /// How each channels-last convolution's kernel is held, by node name.
        var convolutionForms: [String: KernelForm] = [:]
        /// What was done with the weights cache, when one was given.
        var cacheOutcome: WeightsCache.Outcome?
    }

    /// How a convolution kernel is held.
    enum KernelForm: Equatable {
        /// As the lowered graph has it, OIHW: for the channels-first kernels.
        case channelsFirst
        /// A channels-last convolution with one group: the GEMM's filter matrix in this order.
        case matrix(Kernels.FilterOrder)
        /// A channels-last depthwise convolution: `[kh, kw, F]`.
        case depthwise
        /// A channels-last 3x3 convolution with stride 1: transformed for F(m×m, 3×3), m = `tile`.
        case winograd(tile: Int)
        /// A dense layer's, MatMul's or Gemm's weight matrix `[K, N]` (`[N, K]` when `transposed`: a
        /// Gemm's `transB`) in panels of 64 columns (`scion_pack_panels`), packed once here rather
        /// than by OpenBLAS on every call; `productForms` says which.
        case productPanels(transposed: Bool)
    }

    /// Every parameter the executor reads (those in `loading`, or all) as float32, by name.
    ///
    /// The kernels of the convolutions in `plan` come in the order their channels-last kernels read
    /// (`kernelForms`), and those of `folds` scaled per filter, each in the one pass that writes the
    /// array the executor keeps: a Keras kernel is read from the file as it lies (its HWIO order is
    /// the GEMM's right matrix) and scaled in place; an ONNX kernel, already in memory, is scaled
    /// and reordered on its way from the file's bytes. Everything else is read as it is.
    ///
    /// With `releasing`, each parameter read is replaced in `graph` by a storage that says the
    /// executor holds it (`HeldByExecutor`): the graph keeps shapes and names but no bytes, so the
    /// model's own copy (an ONNX file's bytes, a `.keras` archive's mapped pages) is freed once its
    /// owner lets the model go. The trainer's executor keeps its storages: it writes the untrained
    /// ones back as they are (`Trainer.trainedGraph`).
    static func loadWeights(_ graph: inout Graph, loading: Set<String>?, releasing: Bool,
                            channelsLast plan: ChannelsLastPlan = ChannelsLastPlan(),
                            folds: [BatchNormalizationFold] = [], panelled: Set<String> = [],
                            packProducts: Bool = false, cache: WeightsCache? = nil) throws -> PreparedWeights {
        let wanted = { (name: String) in loading?.contains(name) ?? true }
        var forms: [String: KernelForm] = [:], formNodes: [String: String] = [:]
        for (node, kernel, form) in kernelForms(graph, plan, panelled: panelled) + (packProducts ? productForms(graph) : []) {
            forms[kernel] = form
            formNodes[kernel] = node
        }
        // A cache only for an inference executor of the whole graph: a trainer changes its weights.
        let cached = releasing && loading == nil ? cache?.key(for: graph) : nil
        if let (key, path) = cached, let contents = WeightsCache.read(path, key: key),
           var prepared = PreparedWeights(contents, expecting: forms, nodes: formNodes, in: graph) {
            prepared.cacheOutcome = .used(path)
            for parameter in graph.parameters.all { release(parameter, in: &graph) }
            return prepared
        }
        let foldedKernels = Set(folds.map(\.kernel))
        var prepared = PreparedWeights()
        var plain: [Parameter] = [], kernels: [Parameter] = []
        for parameter in graph.parameters.all where wanted(parameter.name) {
            if forms[parameter.name] != nil || foldedKernels.contains(parameter.name) {
                kernels.append(parameter)
            } else {
                plain.append(parameter)
            }
        }
        let plainValues = try concurrently(plain.map { parameter in (parameter.elementCount, { try floats(parameter) }) })
        for (parameter, values) in zip(plain, plainValues) { prepared.values[parameter.name] = values }
        // Statistics and biases are read: each fold's scales, then each kernel in its final form.
        var scales: [String: [Float]] = [:]
        for fold in folds where wanted(fold.kernel) {
            guard let (filterScales, bias) = fold.scalesAndBias(graph, prepared.values) else { continue }
            scales[fold.kernel] = filterScales
            if let name = fold.bias { prepared.values[name] = bias } else { prepared.foldedBiases[fold.convolution] = bias }
            prepared.folded.insert(fold.normalization.name)
        }
        let kernelValues = try concurrently(kernels.map { kernel in
            let (form, kernelScales) = (forms[kernel.name] ?? .channelsFirst, scales[kernel.name])
            return (kernel.elementCount, { try convolutionKernel(kernel, form, scales: kernelScales) })
        })
        for (kernel, values) in zip(kernels, kernelValues) {
            if let form = forms[kernel.name], form != .channelsFirst {
                prepared.kernels[kernel.name] = WeightValues(values)
            } else {
                prepared.values[kernel.name] = values
            }
            if let node = formNodes[kernel.name] { prepared.convolutionForms[node] = forms[kernel.name] }
        }
        if releasing { for parameter in plain + kernels { release(parameter, in: &graph) } }
        if let (key, path) = cached {
            do {
                try WeightsCache.write(prepared.cacheContents(forms), key: key, to: path)
                prepared.cacheOutcome = .written(path)
            } catch {
                prepared.cacheOutcome = .notWritten("\(error)")
            }
        }
        return prepared
    }

    /// Runs `jobs` on every core, the largest first so that the cores finish together, and returns
    /// their results in the jobs' order (or throws the error of the first one, in that order, that
    /// failed). Loading weights is mostly writing fresh memory, page faults and copies, which two
    /// cores do in little more than half the time one takes. Reads from an HDF5 file still take
    /// turns (`HDF5TensorSource`'s lock); the page faults do not (`weightArray` takes them first).
    static func concurrently(_ jobs: [(size: Int, run: @Sendable () throws -> [Float])]) throws -> [[Float]] {
        let workers = min(CorePool.cores, jobs.count)
        guard workers > 1 else { return try jobs.map { try $0.run() } }
        let order = jobs.indices.sorted { jobs[$0].size > jobs[$1].size }
        let state = Mutex((next: 0, results: [Result<[Float], any Error>?](repeating: nil, count: jobs.count)))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = state.withLock({ s -> Int? in
                guard s.next < order.count else { return nil }
                s.next += 1
                return order[s.next - 1]
            }) {
                let result = Result { try jobs[index].run() }
                state.withLock { $0.results[index] = result }
            }
        }
        return try state.withLock { $0.results }.map { result in
            guard let result else { throw RuntimeError("weights", "were not all read (internal)") }
            return try result.get()
        }
    }

    /// The form each channels-last convolution's kernel takes, with the node and kernel names. A
    /// kernel with one group is `filtersLast` when the file holds it so (a Keras kernel,
    /// `storedFiltersLast`), else `filtersFirst`, whose 1x1 case is ONNX's OIHW as it is: neither
    /// needs a permutation for a 1x1 kernel, and a Keras one never. The nodes named in `panelled`
    /// (the depthwise blocks' 1x1 convolutions, whose kernel multiplies by panels) are panels, as are
    /// the wide filter matrices (`Kernels.runsOnPanels`) and the deep narrow ones (one panel) where
    /// the CPU runs CVectorKernels' products.
    static func kernelForms(_ graph: Graph, _ plan: ChannelsLastPlan, panelled: Set<String> = [])
        -> [(node: String, kernel: String, form: KernelForm)] {
        plan.nodes.sorted().compactMap { index in
            let node = graph.nodes[index]
            guard case .conv(let a) = node.op, let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 4 else { return nil }
            if a.groups > 1 { return (node.name, kernel.name, .depthwise) }
            if let tile = Kernels.winogradTile, Kernels.runsWinograd(a, kernelShape: kernel.shape) {
                return (node.name, kernel.name, .winograd(tile: tile))
            }
            let (filters, depth) = (kernel.shape[0], kernel.elementCount / max(kernel.shape[0], 1))
            // At most 64 filters and deep: one panel, packed here once rather than by
            // `NarrowProduct` on every call (EfficientNet's squeeze-and-excitation convolutions,
            // 1152 deep: 0.03-0.19 ms a call).
            if panelled.contains(node.name) || Kernels.runsOnPanels(filters: filters, depth: depth)
                || (Kernels.narrowProductsRun && filters <= 64 && depth >= 128) {
                return (node.name, kernel.name, .matrix(.panels))
            }
            return (node.name, kernel.name, .matrix(storedFiltersLast(kernel) == nil ? .filtersFirst : .filtersLast))
        }
    }

    /// The dense layers, MatMuls and Gemms by a weight matrix whose product runs on packed panels
    /// (`Kernels.runsOnPanels`: more than 64 columns and a depth of at least 128; 9-15% faster than
    /// OpenBLAS on a transformer's products, which packs the weights again on every call), each
    /// weight read by that node alone.
    static func productForms(_ graph: Graph) -> [(node: String, kernel: String, form: KernelForm)] {
        var uses: [String: Int] = [:]
        for node in graph.nodes { for name in node.parameters { uses[name, default: 0] += 1 } }
        return graph.nodes.compactMap { node in
            let transposed: Bool
            switch node.op {
            case .dense, .onnx(.matMul): transposed = false
            case .onnx(.gemm(let a)) where !a.transposeA && a.alpha == 1: transposed = a.transposeB
            default: return nil
            }
            guard node.inputs.count == 1, let kernel = graph.parameter(of: node, role: .kernel), kernel.shape.count == 2,
                  kernel.dtype == .float32, uses[kernel.name] == 1 else { return nil }
            let (depth, columns) = transposed ? (kernel.shape[1], kernel.shape[0]) : (kernel.shape[0], kernel.shape[1])
            guard Kernels.runsOnPanels(filters: columns, depth: depth) else { return nil }
            return (node.name, kernel.name, .productPanels(transposed: transposed))
        }
    }

    /// The storage that holds the lowered (OIHW) `kernel` in Keras's HWIO order, when the lowering
    /// reordered a Keras kernel: those bytes already are `[kh, kw, C, F]` (depthwise `[kh, kw, 1, F]`).
    static func storedFiltersLast(_ kernel: Parameter) -> TensorStorage? {
        let s = kernel.shape
        guard kernel.dtype == .float32, s.count == 4, let (original, shape, permutation) = kernel.storage.reordering,
              permutation == [3, 2, 0, 1], shape == [s[2], s[3], s[1], s[0]],
              original.byteCount == kernel.elementCount * 4 else { return nil }
        return original
    }

    /// A convolution kernel (OIHW in the lowered graph) in `form`, filter `f` times `scales[f]`
    /// when given, written once into the array returned.
    static func convolutionKernel(_ kernel: Parameter, _ form: KernelForm, scales: [Float]?) throws -> [Float] {
        let count = kernel.elementCount, filters = kernel.shape.first ?? 0
        let channels = kernel.shape.count > 1 ? kernel.shape[1] : 1, taps = count / max(filters * channels, 1)
        guard filters > 0, filters * channels * taps == count else {
            throw RuntimeError(kernel.name, "kernel of shape \(kernel.shape) has no whole filters")
        }
        let sameOrder: Bool  // the target order is the lowered graph's OIHW
        switch form {
        case .winograd(let tile):
            return try fromStoredOrder(kernel, count: Kernels.winogradWeightCount(tile: tile, channels: channels, filters: filters)) {
                Kernels.winogradWeights($0, stored: $1, tile: tile, channels: channels, filters: filters, scales: scales, into: $2)
            }
        case .matrix(.panels):
            return try fromStoredOrder(kernel, count: Kernels.panelCount(filters: filters, depth: channels * taps)) {
                Kernels.panels($0, stored: $1, taps: taps, channels: channels, filters: filters, scales: scales, into: $2)
            }
        case .productPanels(let transposed):
            return try productPanels(kernel, transposed: transposed)
        case .channelsFirst: sameOrder = true
        case .matrix(.filtersFirst): sameOrder = taps == 1 || channels == 1
        case .matrix(.filtersLast), .depthwise:
            // Keras's file order is the target: read as it lies, folded filters scaled in place.
            if let original = storedFiltersLast(kernel) {
                return try weightArray(count) { buffer in
                    try original.readBytes(into: UnsafeMutableRawBufferPointer(buffer))
                    if let scales { Kernels.scaleColumns(buffer, scales) }
                }
            }
            sameOrder = false
        }
        if sameOrder && !kernel.storage.isLoaded {
            // From a file (external data, a permuted Keras kernel run channels-first): read into place, scale there.
            var values = try floats(kernel)
            if let scales { values.withUnsafeMutableBufferPointer { Kernels.scaleRows($0, scales) } }
            return values
        }
        return try withStoredFloats(kernel) { oihw in
            weightArray(count) { buffer in
                if form == .matrix(.filtersLast) || form == .depthwise {
                    Kernels.filtersLast(from: oihw, into: buffer, filters: filters, channels: channels, taps: taps, scales: scales)
                } else {
                    // OIHW kept (a scaled copy) or each filter's channels moved inside it.
                    Kernels.filtersFirst(from: oihw, into: buffer, filters: filters, channels: sameOrder ? 1 : channels,
                                         taps: sameOrder ? channels * taps : taps, scales: scales)
                }
            }
        }
    }

    /// A weight matrix `[K, N]` (`[N, K]` when `transposed`) packed into panels of its N columns.
    static func productPanels(_ kernel: Parameter, transposed: Bool) throws -> [Float] {
        guard kernel.shape.count == 2 else { throw RuntimeError(kernel.name, "weight of shape \(kernel.shape) is not a matrix") }
        let (depth, columns) = transposed ? (kernel.shape[1], kernel.shape[0]) : (kernel.shape[0], kernel.shape[1])
        return try withStoredFloats(kernel) { matrix in
            weightArray(Kernels.panelCount(filters: columns, depth: depth)) { target in
                Kernels.panels(matrix, stored: transposed ? .oihw : .hwio, taps: 1, channels: depth, filters: columns, scales: nil, into: target)
            }
        }
    }

    /// A kernel rewritten by `write` (source, its stored order, target) into a fresh weight array
    /// of `count` floats, straight from the stored values: Keras's HWIO read from the file into a
    /// temporary buffer, the lowered OIHW where it lies when in memory.
    static func fromStoredOrder(_ kernel: Parameter, count: Int,
                                _ write: (UnsafeBufferPointer<Float>, Kernels.StoredKernel, UnsafeMutableBufferPointer<Float>) -> Void) throws -> [Float] {
        if let original = storedFiltersLast(kernel) {
            let hwio = try [Float](unsafeUninitializedCapacity: kernel.elementCount) { buffer, initialized in
                try original.readBytes(into: UnsafeMutableRawBufferPointer(buffer))
                initialized = buffer.count
            }
            return hwio.withUnsafeBufferPointer { source in weightArray(count) { write(source, .hwio, $0) } }
        }
        return try withStoredFloats(kernel) { oihw in weightArray(count) { write(oihw, .oihw, $0) } }
    }

    /// The parameter's float32 values, read where they lie when its bytes are in memory already (a
    /// tensor held in memory, or a range of a mapped ONNX file), so the caller's own copy is the only one.
    static func withStoredFloats<R>(_ parameter: Parameter, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        let count = parameter.elementCount
        if parameter.dtype == .float32, let mapped = try parameter.storage.withMappedBytes({ raw -> R? in
            guard raw.count == count * 4, let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
            return try raw.withMemoryRebound(to: Float.self) { try body($0) }
        }), let result = mapped {
            return result
        }
        if parameter.dtype == .float32, parameter.storage.isLoaded {
            let bytes = try parameter.storage.bytes()
            let inPlace = try bytes.withUnsafeBytes { raw -> R? in
                guard raw.count == count * 4, let base = raw.baseAddress,
                      Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
                return try raw.withMemoryRebound(to: Float.self) { try body($0) }
            }
            if let inPlace { return inPlace }
        }
        return try floats(parameter).withUnsafeBufferPointer(body)
    }

    /// `parameter` in `graph` replaced by one whose storage says the executor holds the values.
    private static func release(_ parameter: Parameter, in graph: inout Graph) {
        var released = parameter
        released.storage = TensorStorage(source: HeldByExecutor(name: parameter.name, byteCount: parameter.storage.byteCount))
        graph.parameters[parameter.name] = released
    }

    /// A parameter's values as float32 (integer constants converted). float32 data is read from the
    /// file (or the permutation of it) straight into the result's buffer.
    static func floats(_ parameter: Parameter) throws -> [Float] {
        let count = parameter.elementCount
        if parameter.dtype == .float32 && parameter.storage.byteCount == count * 4 {
            return try weightArray(count) { try parameter.storage.readBytes(into: UnsafeMutableRawBufferPointer($0)) }
        }
        return try converted(parameter.storage.bytes(keep: false), parameter)
    }

    /// A fresh array of `count` floats, every one of which `fill` writes, asked to sit in huge pages
    /// (`Allocator.preferHugePages`): page faults were most of the time a large model's weights took
    /// to load, one per 4 KiB written.
    static func weightArray(_ count: Int, _ fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> [Float] {
        try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            Allocator.preferHugePages(UnsafeMutableRawBufferPointer(buffer))
            // Its page faults here, on this core, rather than inside a reader holding a lock.
            Allocator.touchPages(UnsafeMutableRawBufferPointer(buffer))
            try fill(buffer)
            initialized = count
        }
    }

    /// Bytes of another element type converted to float32.
    private static func converted(_ bytes: [UInt8], _ parameter: Parameter) throws -> [Float] {
        let count = parameter.elementCount
        return try bytes.withUnsafeBytes { raw -> [Float] in
            switch parameter.dtype {
            case .float32 where bytes.count == count * 4:
                return Array(raw.bindMemory(to: Float.self).prefix(count))
            case .float64 where bytes.count == count * 8:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case .int64 where bytes.count == count * 8:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .int32 where bytes.count == count * 4:
                return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            // Bools are held as 0 and 1, as the comparisons make them (a constant attention mask).
            case .bool where bytes.count == count:
                return (0..<count).map { raw[$0] == 0 ? 0 : 1 }
            default:
                throw RuntimeError(parameter.name, "holds \(parameter.dtype) values (\(bytes.count) bytes for shape \(parameter.shape)); the executor runs float32")
            }
        }
    }
}

/// Stands in for a parameter's bytes in an inference executor's graph once the executor holds the
/// values (`Executor.loadWeights`): the size stays known, and a read says where the values are
/// instead of reading the file again.
final class HeldByExecutor: TensorSource {
    let name: String
    let byteCount: Int
    var location: String { "\(name) (held by the executor as float32)" }

    init(name: String, byteCount: Int) { self.name = name; self.byteCount = byteCount }

    func readBytes() throws -> [UInt8] {
        throw RuntimeError(name, "its values were handed to the executor (and may be folded); read the model's own graph for its bytes")
    }
}

import Foundation
import ScionIR

/// Prepared weights kept on disk between runs of the same model file: what `Executor.loadWeights`
/// makes of the file's weights (BatchNormalizations folded, kernels reordered, packed in panels,
/// Winograd-transformed), written once and mapped on the next run instead of read and prepared
/// again. A mapped file in the page cache costs no fresh memory; preparing does (ResNet50: 140 MB
/// of fresh pages, faulted in and zeroed, most of its preparation).
///
/// A cache file is used only when its key is exactly this run's: the model file (its path, device,
/// inode, size and modification and change times to the nanosecond), the program (the executable's
/// own identity: a rebuilt Scion never reads an older one's layouts), the CPU's kernel level and
/// the graph (every parameter's name, shape and type, every node's name and op). Anything else is
/// a miss, never an error: the weights are prepared from the model file as without a cache, and
/// the cache file is replaced (written beside it and renamed over it, so a reader mapping the old
/// one keeps it whole). The same is true of a cache file that is damaged or cut short.
/// For a graph run as it was read from `source`; a graph changed in memory (a grafted head, trained
/// weights) must not be given one.
public struct WeightsCache: Sendable {
    public let directory: String
    public let source: String

    /// What the executor did with the cache.
    public enum Outcome: Sendable, Equatable {
        /// The prepared weights were mapped from this file.
        case used(String)
        /// No usable file: the weights were prepared and written to this file.
        case written(String)
        /// No usable file, and none could be written (the reason).
        case notWritten(String)

        public var isUsed: Bool {
            if case .used = self { return true }
            return false
        }
    }

    public init(directory: String, source: String) {
        self.directory = directory
        self.source = source
    }

    /// What a cache file holds: the executor's `PreparedWeights`, kernels in their forms.
    struct Contents {
        var plain: [String: [Float]] = [:]
        var kernels: [String: WeightValues] = [:]
        var folded: Set<String> = []
        var foldedBiases: [String: [Float]] = [:]
        /// Each prepared kernel's form, by kernel name (`KernelForm.code`).
        var forms: [String: Executor.KernelForm] = [:]
    }

    /// The key this run's cache file must hold, and the file's path; nil when the model file or the
    /// executable cannot be looked at.
    func key(for graph: Graph) -> (key: String, path: String)? {
        guard let model = FileIdentity.of(source), let program = FileIdentity.program else { return nil }
        // The graph by its parameters' names, shapes and types and its nodes' names and ops, hashed
        // as it is walked (a string of it took a third of preparing DenseNet121 from the cache).
        var graphHash = FNV1a()
        for parameter in graph.parameters.all {
            graphHash.mix(parameter.name)
            for dimension in parameter.shape { graphHash.mix(dimension) }
            graphHash.mix(parameter.dtype.rawValue)
        }
        for node in graph.nodes {
            graphHash.mix(node.name)
            graphHash.mix(node.op.typeName)
        }
        let key = "scion weights cache 1\nmodel \(model)\n\(program)\ncpu \(Kernels.kernelLevel)\n"
            + "graph \(String(graphHash.value, radix: 16)) \(graph.parameters.count) \(graph.nodes.count)"
        return (key, FileIdentity.cacheFile(for: source, in: directory, suffix: "weights"))
    }
}

// MARK: - The file

/// `SCIONWTS` · key length (u64) · key · entry count (u64) · entries · values.
/// An entry: kind (u8: 0 a plain parameter, 1 a prepared kernel, 2 a folded bias, 3 a folded
/// BatchNormalization's name, no values), form code (u8) and argument (u32), name length (u32) and
/// name, value count and byte offset (u64 each). Values are float32, each span 64-byte aligned.
extension WeightsCache {
    static let magic = Array("SCIONWTS".utf8)

    /// The cache's contents when `path` holds exactly `key` and entries that fit the file; nil otherwise.
    static func read(_ path: String, key: String) -> Contents? {
        guard let file = MappedFile(path: path) else { return nil }
        var reader = Reader(file: file)
        guard let head = reader.bytes(magic.count), head.elementsEqual(magic), let keyLength = reader.integer(), keyLength == key.utf8.count,
              let keyBytes = reader.bytes(keyLength), keyBytes.elementsEqual(key.utf8),
              let count = reader.integer(), count <= file.byteCount / 26 else { return nil }
        var contents = Contents()
        for _ in 0..<count {
            guard let kind = reader.byte(), let code = reader.byte(), let argument = reader.word(), let nameLength = reader.word(),
                  let nameBytes = reader.bytes(Int(nameLength)), let values = reader.integer(), let offset = reader.integer(),
                  values <= file.byteCount / 4, offset % 64 == 0, offset <= file.byteCount - values * 4 else { return nil }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let span = WeightValues(mapped: file, offset: offset, count: values)
            switch kind {
            case 0: contents.plain[name] = span.array
            case 1:
                guard let form = Executor.KernelForm(code: code, argument: argument) else { return nil }
                contents.kernels[name] = span
                contents.forms[name] = form
            case 2: contents.foldedBiases[name] = span.array
            case 3: contents.folded.insert(name)
            default: return nil
            }
        }
        return contents
    }

    /// Writes `contents` under `key` to `path`: a temporary file beside it, renamed over it when whole.
    static func write(_ contents: Contents, key: String, to path: String) throws {
        var entries: [(kind: UInt8, form: Executor.KernelForm?, name: String, values: WeightValues)] = []
        for name in contents.plain.keys.sorted() { entries.append((0, nil, name, WeightValues(contents.plain[name]!))) }
        for name in contents.kernels.keys.sorted() { entries.append((1, contents.forms[name], name, contents.kernels[name]!)) }
        for name in contents.foldedBiases.keys.sorted() { entries.append((2, nil, name, WeightValues(contents.foldedBiases[name]!))) }
        for name in contents.folded.sorted() { entries.append((3, nil, name, WeightValues([]))) }
        var header = magic
        func integer(_ value: Int) { withUnsafeBytes(of: UInt64(value).littleEndian) { header += $0 } }
        func word(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { header += $0 } }
        let aligned = { (offset: Int) in (offset + 63) / 64 * 64 }
        let entryBytes = entries.reduce(0) { $0 + 1 + 1 + 4 + 4 + $1.name.utf8.count + 8 + 8 }
        var offset = aligned(magic.count + 8 + key.utf8.count + 8 + entryBytes)
        integer(key.utf8.count)
        header += Array(key.utf8)
        integer(entries.count)
        var offsets: [Int] = []
        for entry in entries {
            let (code, argument) = entry.form?.code ?? (0, 0)
            header += [entry.kind, code]
            word(argument)
            word(UInt32(entry.name.utf8.count))
            header += Array(entry.name.utf8)
            integer(entry.values.count)
            integer(offset)
            offsets.append(offset)
            offset = aligned(offset + entry.values.count * 4)
        }
        try FileManager.default.createDirectory(atPath: directoryOf(path), withIntermediateDirectories: true)
        let temporary = path + ".\(getpid()).partial"
        guard let handle = fopen(temporary, "wb") else { throw RuntimeError(path, "cannot be written (\(String(cString: strerror(errno))))") }
        var failed = false
        var written = 0
        func put(_ pointer: UnsafeRawPointer?, _ count: Int) {
            guard count > 0, !failed else { return }
            failed = fwrite(pointer, 1, count, handle) != count
            written += count
        }
        header.withUnsafeBytes { put($0.baseAddress, $0.count) }
        let zeros = [UInt8](repeating: 0, count: 64)
        for (entry, start) in zip(entries, offsets) {
            zeros.withUnsafeBytes { put($0.baseAddress, start - written) }
            entry.values.withUnsafeBufferPointer { put($0.baseAddress, $0.count * 4) }
        }
        failed = fclose(handle) != 0 || failed
        guard !failed, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw RuntimeError(path, "cannot be written (\(String(cString: strerror(errno))))")
        }
    }

    private static func directoryOf(_ path: String) -> String { (path as NSString).deletingLastPathComponent }

    /// Reads the header's little-endian fields, each checked against the file's end.
    private struct Reader {
        let file: MappedFile
        var offset = 0

        mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer? {
            guard count >= 0, count <= file.byteCount - offset else { return nil }
            defer { offset += count }
            return UnsafeRawBufferPointer(start: file.base + offset, count: count)
        }
        mutating func byte() -> UInt8? { bytes(1)?.first }
        mutating func word() -> UInt32? { bytes(4).map { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) } }
        mutating func integer() -> Int? {
            guard let raw = bytes(8).map({ UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }), raw <= UInt64(Int.max) else { return nil }
            return Int(raw)
        }
    }
}

extension Executor.KernelForm {
    /// The form as a cache entry stores it: a code and an argument.
    var code: (UInt8, UInt32) {
        switch self {
        case .channelsFirst: return (1, 0)
        case .matrix(.filtersLast): return (2, 0)
        case .matrix(.filtersFirst): return (3, 0)
        case .matrix(.panels): return (4, 0)
        case .depthwise: return (5, 0)
        case .winograd(let tile): return (6, UInt32(tile))
        case .productPanels(let transposed): return (7, transposed ? 1 : 0)
        }
    }

    init?(code: UInt8, argument: UInt32) {
        switch (code, argument) {
        case (1, 0): self = .channelsFirst
        case (2, 0): self = .matrix(.filtersLast)
        case (3, 0): self = .matrix(.filtersFirst)
        case (4, 0): self = .matrix(.panels)
        case (5, 0): self = .depthwise
        case (6, let tile) where tile <= 8: self = .winograd(tile: Int(tile))
        case (7, let transposed) where transposed <= 1: self = .productPanels(transposed: transposed == 1)
        default: return nil
        }
    }
}

extension Executor.PreparedWeights {
    /// The weights a cache file holds, when they are every parameter of `graph` with each kernel in
    /// the form this run's plan gives it (`expecting`, by kernel name; `nodes`: the node of each).
    init?(_ contents: WeightsCache.Contents, expecting forms: [String: Executor.KernelForm], nodes: [String: String], in graph: Graph) {
        for parameter in graph.parameters.all {
            if let form = forms[parameter.name], form != .channelsFirst {
                guard contents.forms[parameter.name] == form, contents.kernels[parameter.name] != nil else { return nil }
            } else {
                guard contents.plain[parameter.name]?.count == parameter.elementCount else { return nil }
            }
        }
        guard contents.kernels.count == forms.values.filter({ $0 != .channelsFirst }).count else { return nil }
        self.init(values: contents.plain, kernels: contents.kernels, folded: contents.folded, foldedBiases: contents.foldedBiases)
        for (kernel, node) in nodes { convolutionForms[node] = forms[kernel] }
    }

    /// What a cache file keeps of these weights.
    func cacheContents(_ forms: [String: Executor.KernelForm]) -> WeightsCache.Contents {
        WeightsCache.Contents(plain: values, kernels: kernels, folded: folded, foldedBiases: foldedBiases,
                              forms: forms.filter { kernels[$0.key] != nil })
    }
}

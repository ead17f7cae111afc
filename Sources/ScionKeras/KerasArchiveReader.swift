import Foundation
import HDF5
import ScionIR
import ScionZip

/// Reads Keras 3 `.keras` archives: a zip holding `config.json`, `metadata.json` and
/// `model.weights.h5`, whose groups follow Keras's object paths (`layers/conv2d/vars/0`) rather than
/// layer names. A stored (uncompressed) weights file is opened in place, from the mapped archive.
extension KerasModelReader {
    /// Configs of real models are well under this; a larger one is refused before it is inflated.
    static let maximumConfigBytes = 256 << 20
    /// A compressed weights file has to be inflated into memory; refuse beyond this.
    static let maximumInflatedWeightsBytes = 16 << 30

    /// `walkRecordsIn`: a folder where the walk of its weights file is kept (`HDF5WalkRecords`).
    package static func readArchive(at path: String, walkRecordsIn folder: String? = nil) throws -> Graph {
        try KerasError.fromZip { try readArchiveEntries(at: path, walkRecord: walkRecord(in: folder, for: path, inner: "model.weights.h5")) }
    }

    private static func readArchiveEntries(at path: String, walkRecord: HDF5WalkRecords?) throws -> Graph {
        let archive = try ZipArchive(path: path)
        guard let configEntry = archive.entry(named: "config.json") else {
            throw KerasError(.notAKerasFile, file: path, "a zip archive without config.json: not a .keras model")
        }
        let configBytes = try archive.contents(of: configEntry, limit: maximumConfigBytes)
        var version = "3"
        var classNames: [String]?
        if let metadataEntry = archive.entry(named: "metadata.json"),
           let metadata = try? JSON.parse(Data(archive.contents(of: metadataEntry, limit: 1 << 20))) {
            if let recorded = metadata["keras_version"]?.string { version = recorded }
            // Scion's own note (Graph+ClassNames): a list of strings, else ignored like any foreign key.
            classNames = metadata[Graph.classNamesKey]?.array.flatMap { entries in
                let names = entries.compactMap(\.string)
                return names.count == entries.count ? names : nil
            }
        }
        let builder = try architecture(configText: Data(configBytes), configName: "config.json",
                                       kerasVersion: version, format: "keras-archive", path: path)
        var graph = builder.graph
        if let classNames { graph.classNames = classNames }

        guard let weightsEntry = archive.entry(named: "model.weights.h5") else {
            throw KerasError(.invalidWeights, file: path, subject: "model.weights.h5", "entry is missing: the archive holds no weights")
        }
        let (weightsFile, memory) = try openWeights(weightsEntry, in: archive, path: path, walkRecord: walkRecord)
        let binder = KerasObjectPathWeightBinder(file: path, records: builder.records, backingMemory: memory)
        try binder.bind(from: weightsFile.root, into: &graph)
        try finish(&graph, file: path)
        return graph
    }

    /// Opens the archive's weights file without copying it when stored, inflating it otherwise.
    /// Returns the memory the file lives in, which its datasets keep.
    private static func openWeights(_ entry: ZipEntry, in archive: ZipArchive, path: String,
                                    walkRecord: HDF5WalkRecords?) throws -> (HDF5File, WeightsFileImage) {
        let name = "\(path)/model.weights.h5"
        if let stored = try archive.storedBytes(of: entry, verifyingChecksum: false) {
            let file = try wrapping(name) { try HDF5File(readingImage: stored, name: name, walkRecord: walkRecord) }
            return (file, WeightsFileImage(bytes: stored, owner: archive, isFileMapping: true))
        }
        let inflated = OwnedBytes(try archive.contents(of: entry, limit: maximumInflatedWeightsBytes))
        let image = UnsafeRawBufferPointer(inflated.buffer)
        let file = try wrapping(name) { try HDF5File(readingImage: image, name: name, walkRecord: walkRecord) }
        return (file, WeightsFileImage(bytes: image, owner: inflated, isFileMapping: false))
    }
}

/// Bytes at a stable address for as long as this object lives, for C code that keeps a pointer.
final class OwnedBytes {
    let buffer: UnsafeMutableRawBufferPointer

    init(_ bytes: [UInt8]) {
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
        bytes.withUnsafeBytes { source in buffer.copyMemory(from: source) }
    }

    deinit { buffer.deallocate() }
}

/// Binds weights stored by Keras 3's object paths: each layer's variables are `vars/0`, `vars/1`...
/// under `layers/<snake_case class>[_N]`, in the order the layer created them; a layer with
/// sublayers (LSTM's `cell`, Bidirectional's `forward_layer`...) has their groups inside its own,
/// read after its own variables in Keras's order (`KerasNestedWeights`).
struct KerasObjectPathWeightBinder {
    let file: String
    let records: [KerasLayerRecord]
    let backingMemory: WeightsFileImage
    /// Sublayers nest a few levels (Bidirectional > LSTM > cell); a deeper file is hostile.
    static let maximumNesting = 8

    func bind(from root: HDF5Group, into graph: inout Graph) throws {
        for record in records where !record.isModel {
            guard (try? root.kind(of: record.objectPath)) == .group else { continue }
            let variables = try collect(root, path: record.objectPath, prefix: "", className: record.className,
                                        config: record.config, depth: 0, record: record)
            for (role, dataset) in variables {
                let name = "\(record.scopedName)/\(role.rawValue)"
                let trainable = record.trainable
                    && !KerasNestedWeights.isAlwaysFrozen(role, className: record.className, config: record.config)
                guard graph.parameters.add(try makeParameter(
                    name: name, role: role, dataset: dataset, trainable: trainable, file: file,
                    backingMemory: backingMemory)) else {
                    throw KerasError(.invalidWeights, file: file, subject: name, "weight is stored twice")
                }
                for index in record.nodeIndices { graph.nodes[index].parameters.append(name) }
            }
        }
    }

    /// The variables of the object at `path` and of its sublayers, with their roles (`kernel`,
    /// `forward_layer/cell/kernel`), in Keras's order: its own `vars/<i>` by number, then the
    /// sublayers Keras creates in a known order, then any other groups in the file's order.
    private func collect(_ root: HDF5Group, path: String, prefix: String, className: String, config: JSON,
                         depth: Int, record: KerasLayerRecord) throws -> [(role: ParameterRole, dataset: HDF5Dataset)] {
        guard depth <= Self.maximumNesting else {
            throw KerasError(.invalidWeights, file: file, subject: record.scopedName,
                             "weights nested more than \(Self.maximumNesting) sublayers deep at \(path)")
        }
        var result: [(role: ParameterRole, dataset: HDF5Dataset)] = []
        let varsPath = "\(path)/vars"
        if (try? root.kind(of: varsPath)) == .group {
            let vars = try KerasModelReader.wrapping(file) { try root.group(varsPath) }
            let stored = try KerasModelReader.wrapping(file) { try vars.childNames() }
                .compactMap { name in Int(name).map { (index: $0, name: name) } }
                .sorted { $0.index < $1.index }
            let roles = KerasNestedWeights.ownRoles(className: className, config: config)
            for (position, entry) in stored.enumerated() {
                let role = roles.flatMap { position < $0.count ? $0[position] : nil } ?? .other("var\(entry.index)")
                // `prefix` is the sublayers' attribute path with a trailing slash (`forward_layer/cell/`).
                let scoped = prefix.isEmpty ? role : .sublayer(String(prefix.dropLast()), role)
                result.append((scoped, try KerasModelReader.wrapping(file) { try vars.dataset(entry.name) }))
            }
        }
        let group = try KerasModelReader.wrapping(file) { try root.group(path) }
        let children = try KerasModelReader.wrapping(file) { try group.childNames() }
            .filter { $0 != "vars" && (try? group.kind(of: $0)) == .group }
        let known = KerasNestedWeights.sublayers(className: className, config: config)
        let ordered = known.filter { children.contains($0.attribute) }.map { ($0.attribute, $0.className, $0.config) }
            + children.filter { child in !known.contains { $0.attribute == child } }.map { ($0, "", JSON.null) }
        for (child, childClass, childConfig) in ordered {
            result += try collect(root, path: "\(path)/\(child)", prefix: "\(prefix)\(child)/", className: childClass,
                                  config: childConfig, depth: depth + 1, record: record)
        }
        return result
    }
}

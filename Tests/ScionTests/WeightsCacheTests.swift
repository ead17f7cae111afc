import Foundation
import Scion
import ScionIR
@testable import ScionRuntime
import XCTest

/// The weights cache (`WeightsCache`): a run from it gives the same bits as one that prepares the
/// weights itself, and a cache file that is not exactly this run's (the model file touched, another
/// graph, a damaged or cut file) is never used: the weights are prepared again and the file replaced.
final class WeightsCacheTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    func fixture(_ path: String) -> String { fixtures.appendingPathComponent(path).path }

    /// Models whose prepared kernels take every form between them: Winograd, panels, filter
    /// matrices both ways, depthwise, packed products; Keras `.h5` and `.keras`, torch's ONNX.
    let models = ["keras2/mobilenet_v2.h5", "keras3/efficientnet_blocks.keras", "keras3/convnext_blocks.h5",
                  "torch/tiny_resnet.onnx", "torch/tiny_vgg.onnx", "torch/tiny_densenet.onnx"]

    func input(of model: String) throws -> RuntimeTensor {
        let base = (model as NSString).deletingPathExtension
        return try NumpyFile.read(fixture(base + ".input.npy"))
    }

    func outputs(_ executor: Executor, _ x: RuntimeTensor) throws -> [String: [Float]] {
        let name = try XCTUnwrap(executor.graph.inputs.first?.name)
        return try executor.run([name: x]).mapValues(\.data)
    }

    func testCachedWeightsGiveTheSameBitsAndAreMapped() throws {
        let directory = try temporaryFolder()
        var forms = Set<String>()
        for model in models {
            let loaded = try Model.load(fixture(model))
            let x = try input(of: model)
            let plain = try loaded.executor()
            XCTAssertNil(plain.weightsCacheOutcome)
            let expected = try outputs(plain, x)
            let first = try loaded.executor(weightsCache: directory)
            guard case .written(let path) = first.weightsCacheOutcome else { return XCTFail("\(model): \(String(describing: first.weightsCacheOutcome))") }
            XCTAssertEqual(try outputs(first, x), expected, model)
            // A new process would load the model again: the same file, the same graph.
            let second = try Model.load(fixture(model)).executor(weightsCache: directory)
            XCTAssertEqual(second.weightsCacheOutcome, .used(path), model)
            XCTAssertEqual(try outputs(second, x), expected, "\(model): the cached weights' bits")
            XCTAssertEqual(second.convolutionForms, plain.convolutionForms, model)
            XCTAssertFalse(second.preparedKernels.isEmpty, model)
            for (name, values) in second.preparedKernels {
                XCTAssertTrue(values.isMapped, "\(model): \(name) is the cache file's pages")
                XCTAssertEqual(values.array, plain.preparedKernels[name]?.array, "\(model): \(name)")
            }
            XCTAssertEqual(second.weights, plain.weights, model)
            XCTAssertEqual(second.folded, plain.folded, model)
            XCTAssertEqual(second.foldedBiases, plain.foldedBiases, model)
            for form in plain.convolutionForms.values { forms.insert("\(form)".components(separatedBy: "(").first ?? "") }
        }
        // Every form's values went through the file (else the list of models needs one that has it).
        // (Packed products: `testPackedProductsGoThroughTheCache`; no fixture has one deep enough.)
        XCTAssertEqual(forms, Kernels.narrowProductsRun ? ["matrix", "depthwise", "winograd"] : ["matrix", "depthwise"])
    }

    /// A dense layer deep and wide enough for packed panels (`KernelForm.productPanels`): 128 → 96.
    func testPackedProductsGoThroughTheCache() throws {
        try XCTSkipUnless(Kernels.narrowProductsRun, "packed products need AVX2 or AVX-512")
        let directory = try temporaryFolder()
        let source = (directory as NSString).appendingPathComponent("dense.model")
        try Data("a model file".utf8).write(to: URL(fileURLWithPath: source))
        var parameters = ParameterTable()
        for (name, shape) in [("dense/kernel", [128, 96]), ("dense/bias", [96])] {
            let values = (0..<shape.reduce(1, *)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
            parameters.add(Parameter(name: name, role: ParameterRole(rawValue: name.hasSuffix("kernel") ? "kernel" : "bias"), shape: shape,
                                     dtype: .float32, trainable: true, storage: TensorStorage(bytes: values.withUnsafeBytes { Array($0) })))
        }
        let graph = Graph(name: "dense", inputs: [ValueInfo(name: "x", shape: Shape([nil, 128]), dtype: .float32)], outputs: ["dense"],
                          nodes: [Node(name: "dense", op: .dense(DenseAttributes(units: 96, activation: .relu(maxValue: nil, negativeSlope: 0, threshold: 0))), inputs: ["x"], outputs: ["dense"],
                                       parameters: ["dense/kernel", "dense/bias"])],
                          parameters: parameters)
        let x = RuntimeTensor(shape: [3, 128], data: (0..<384).map { Float($0 % 17) / 8 - 1 })
        let plain = try Executor(graph: graph)
        XCTAssertEqual(plain.convolutionForms, ["dense": Executor.KernelForm.productPanels(transposed: false)])
        let expected = try outputs(plain, x)
        let cache = WeightsCache(directory: directory, source: source)
        let first = try Executor(graph: graph, weightsCache: cache)
        guard case .written(let path) = first.weightsCacheOutcome else { return XCTFail("\(String(describing: first.weightsCacheOutcome))") }
        let second = try Executor(graph: graph, weightsCache: cache)
        XCTAssertEqual(second.weightsCacheOutcome, WeightsCache.Outcome.used(path))
        XCTAssertEqual(second.preparedKernels["dense/kernel"]?.isMapped, true)
        XCTAssertEqual(try outputs(second, x), expected)
    }

    func testAnythingButTheSameFileAndGraphIsNotUsed() throws {
        let directory = try temporaryFolder()
        let copy = (directory as NSString).appendingPathComponent("model.onnx")
        try FileManager.default.copyItem(atPath: fixture("torch/tiny_resnet.onnx"), toPath: copy)
        let x = try input(of: "torch/tiny_resnet.onnx")
        let expected = try outputs(try Model.load(copy).executor(), x)
        func cached() throws -> (WeightsCache.Outcome?, [String: [Float]]) {
            let executor = try Model.load(copy).executor(weightsCache: directory)
            return (executor.weightsCacheOutcome, try outputs(executor, x))
        }
        guard case .written(let path) = try cached().0 else { return XCTFail("no cache file written") }
        XCTAssertEqual(try cached().0, .used(path))

        // The model file changed (its modification time): prepared again, the file replaced.
        var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_000, tv_nsec: 0)]
        XCTAssertEqual(utimensat(AT_FDCWD, copy, &times, 0), 0)
        XCTAssertEqual(try cached().0, .written(path))
        XCTAssertEqual(try cached().0, .used(path))

        // Another graph read from the same file (here a node renamed) does not use it; it replaces it.
        var changed = try Model.load(copy)
        changed.graph.nodes[0].name += "_renamed"
        XCTAssertEqual(try changed.executor(weightsCache: directory).weightsCacheOutcome, .written(path))
        XCTAssertEqual(try cached().0, .written(path))
        XCTAssertEqual(try cached().0, .used(path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".weights") }.count, 1,
                       "one file per model file, replaced in place")

        // Damaged files: each is refused, the weights prepared again, the same numbers, the file replaced.
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        var damaged: [(String, Data)] = [("empty", Data()), ("cut in its header", whole.prefix(40)), ("cut in its values", whole.prefix(whole.count - 100)),
                                         ("not a cache", Data(repeating: 0x41, count: 4096))]
        var flipped = whole
        flipped[9] ^= 0xff
        damaged.append(("its key's length changed", flipped))
        var offset = whole
        // The first entry's offset (after the magic, the key and the entry count) pointed past the end.
        let keyLength = Int(whole.subdata(in: 8..<16).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let entry = 16 + keyLength + 8
        let nameLength = Int(whole.subdata(in: (entry + 6)..<(entry + 10)).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
        let offsetField = entry + 10 + nameLength + 8
        offset.replaceSubrange(offsetField..<(offsetField + 8), with: withUnsafeBytes(of: UInt64(whole.count).littleEndian) { Data($0) })
        damaged.append(("an offset past its end", offset))
        for (what, bytes) in damaged {
            try bytes.write(to: URL(fileURLWithPath: path))
            let (outcome, values) = try cached()
            XCTAssertEqual(outcome, .written(path), what)
            XCTAssertEqual(values, expected, what)
            XCTAssertEqual(try cached().0, .used(path), "\(what): replaced by a sound file")
        }
    }

    func testAnUnwritableFolderIsReportedAndTheRunGoesOn() throws {
        let directory = try temporaryFolder()
        let blocker = (directory as NSString).appendingPathComponent("file")
        try Data("x".utf8).write(to: URL(fileURLWithPath: blocker))
        let executor = try Model.load(fixture("torch/tiny_resnet.onnx")).executor(weightsCache: blocker + "/cache")
        guard case .notWritten = executor.weightsCacheOutcome else { return XCTFail("\(String(describing: executor.weightsCacheOutcome))") }
        XCTAssertNoThrow(try outputs(executor, try input(of: "torch/tiny_resnet.onnx")))
    }

    /// The walk of a Keras file's HDF5 structures (`HDF5WalkRecords`) is kept with the cache and used
    /// for the same unchanged file: a record whose strings were changed is what the reader then
    /// reads (so it was used, not walked again); the file touched, it is walked again.
    func testTheWalkOfAnUnchangedFileIsTakenFromTheCache() throws {
        let directory = try temporaryFolder()
        for (fixtureName, inner) in [("keras2/mobilenet_v2.h5", false), ("keras3/efficientnet_blocks.keras", true)] {
            let copy = (directory as NSString).appendingPathComponent((fixtureName as NSString).lastPathComponent)
            try FileManager.default.copyItem(atPath: fixture(fixtureName), toPath: copy)
            let plain = try Model.load(copy)
            XCTAssertEqual(try Model.load(copy, cache: directory).graph.nodes.map(\.name), plain.graph.nodes.map(\.name), fixtureName)
            let records = try FileManager.default.contentsOfDirectory(atPath: directory).filter {
                $0.hasPrefix((copy as NSString).lastPathComponent) && $0.hasSuffix(".walk")
            }
            XCTAssertEqual(records.count, 1, "\(fixtureName): \(records)")
            let record = URL(fileURLWithPath: (directory as NSString).appendingPathComponent(try XCTUnwrap(records.first)))
            if inner {
                // An archive's config is not in its weights file: the record holds the weights file's walk.
                XCTAssertEqual(try Model.load(copy, cache: directory).graph.parameters.names, plain.graph.parameters.names)
                continue
            }
            // The same length, so the record stays well formed: "Conv1" named "ConvZ" in the stored config.
            var bytes = try Data(contentsOf: record)
            let from = Data("\"Conv1\"".utf8), to = Data("\"ConvZ\"".utf8)
            var replaced = 0
            while let range = bytes.range(of: from) { bytes.replaceSubrange(range, with: to); replaced += 1 }
            XCTAssertGreaterThan(replaced, 0, "the record holds the model's config")
            try bytes.write(to: record)
            // The config now names a layer whose weights the file has under another name.
            XCTAssertThrowsError(try Model.load(copy, cache: directory), "the record was read instead of walking the file") {
                XCTAssertTrue("\($0)".contains("ConvZ"), "\($0)")
            }
            var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 0), timespec(tv_sec: 1_700_000_000, tv_nsec: 0)]
            XCTAssertEqual(utimensat(AT_FDCWD, copy, &times, 0), 0)
            XCTAssertEqual(try Model.load(copy, cache: directory).graph.nodes.map(\.name), plain.graph.nodes.map(\.name),
                           "a touched file is walked again")
            // A damaged record is no walk at all: the file is walked.
            try Data("SCIONWLK".utf8).write(to: record)
            XCTAssertEqual(try Model.load(copy, cache: directory).graph.nodes.map(\.name), plain.graph.nodes.map(\.name))
        }
    }

    /// A file whose walk fails is refused as without a cache, and no record of it is kept.
    func testAFileThatFailsItsWalkLeavesNoRecord() throws {
        let directory = try temporaryFolder()
        let hostile = fixtures.deletingLastPathComponent().appendingPathComponent("Tests/Hostile")
        // (Not hdf5_loops.h5: its walk takes its whole 5 s timeout, twice.)
        let names = ["empty.h5", "random.h5", "truncated.h5", "bit_flipped.h5", "hdf5_heap_crash.h5", "soft_link.h5", "external_link.h5",
                     "config_not_json.h5", "chunked_declared_huge.keras", "truncated.keras"]
        var refused = 0, crashed = 0
        for name in names {
            let path = hostile.appendingPathComponent(name).path
            let withoutCache = Result { try Model.load(path) }
            let withCache = Result { try Model.load(path, cache: directory) }
            switch (withoutCache, withCache) {
            case (.failure(let a), .failure(let b)):
                XCTAssertEqual("\(a)", "\(b)", name)
                refused += 1
                let records = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(name + ".") }
                // A walk that ended well may be kept even when the reader refuses the file later; one that crashed is not.
                if "\(a)".contains("libhdf5 crashed") {
                    XCTAssertEqual(records, [], name)
                    crashed += 1
                }
            case (.success, .success): break
            default: XCTFail("\(name): \(withoutCache) without a cache, \(withCache) with one")
            }
        }
        XCTAssertGreaterThan(refused, 5)
        XCTAssertEqual(crashed, 1, "hdf5_heap_crash.h5 crashes libhdf5 in the walk")
    }

    func temporaryFolder() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scion-weights-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}

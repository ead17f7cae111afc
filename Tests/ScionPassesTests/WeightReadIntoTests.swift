import ScionIR
import XCTest

@testable import ScionPasses

/// Reading a tensor straight into memory the reader owns (`TensorStorage.readBytes(into:)`, what the
/// executor's float32 weights are read with) gives the same bytes as `bytes()`, keeps nothing, and a
/// lowered kernel still tells which original it is a reordering of (`TensorStorage.reordering`).
final class WeightReadIntoTests: XCTestCase {
    func read(_ storage: TensorStorage) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: storage.byteCount) { buffer, initialized in
            try storage.readBytes(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = storage.byteCount
        }
    }

    func testPermutedReadIntoMatchesThePermutedBytes() throws {
        for (shape, permutation) in [([3, 3, 5, 37], [3, 2, 0, 1]), ([2, 3, 4], [2, 0, 1]), ([4, 1, 6], [2, 1, 0]), ([7], [0])] {
            let count = shape.reduce(1, *)
            let counting = CountingSource(bytes: floatBytes(count: count, offset: 1))
            let source = try PermutedTensorSource(
                base: TensorStorage(source: counting), permutation: TensorPermutation(shape: shape, permutation: permutation, elementSize: 4))
            let storage = TensorStorage(source: source)
            XCTAssertEqual(try read(storage), try source.readBytes(), "shape \(shape) by \(permutation)")
            XCTAssertFalse(storage.isLoaded, "a read into the caller's memory keeps nothing")
            XCTAssertEqual(counting.reads, 2)
        }
    }

    func testPartPermutedReadIntoKeepsTheRestAsItIs() throws {
        // Dense rows after a Flatten: only elements 6..<18 are a [2, 2, 3] block to permute.
        let base = TensorStorage(bytes: floatBytes(count: 20))
        let part = try TensorPermutation(shape: [2, 2, 3], permutation: [2, 0, 1], elementSize: 4)
        let source = try PermutedTensorSource(base: base, permutation: part, byteRange: 24..<72)
        XCTAssertEqual(try read(TensorStorage(source: source)), try source.readBytes())
        XCTAssertNil(TensorStorage(source: source).reordering, "a part is not a whole-tensor reordering")
    }

    func testReadIntoRefusesABufferOfTheWrongSize() throws {
        let memory = TensorStorage(bytes: floatBytes(count: 4))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 12, alignment: 4)
        defer { buffer.deallocate() }
        XCTAssertThrowsError(try memory.readBytes(into: buffer)) { XCTAssertTrue("\($0)".contains("16 bytes"), "\($0)") }
        XCTAssertThrowsError(try TensorStorage(source: CountingSource(bytes: floatBytes(count: 4))).readBytes(into: buffer))
    }

    /// The hook for a channels-last executor: the lowered OIHW kernel leads back to the HWIO original.
    func testLoweredKernelLeadsBackToItsOriginal() throws {
        var sketch = GraphSketch(inputs: [("image", [nil, 4, 4, 3])])
        sketch.add("conv", Ops.conv(2, kernel: [3, 3], useBias: false), ["image"], parameters: [("kernel", [3, 3, 3, 2])])
        sketch.outputs = ["conv"]
        let original = TensorStorage(bytes: floatBytes(count: 54))
        var graph = sketch.graph
        graph.parameters["conv/kernel"]?.storage = original
        try ChannelsFirstLayoutPass().run(&graph)
        let lowered = try XCTUnwrap(graph.parameters["conv/kernel"])
        XCTAssertEqual(lowered.shape, [2, 3, 3, 3])
        let reordering = try XCTUnwrap(lowered.storage.reordering)
        XCTAssertTrue(reordering.original === original)
        XCTAssertEqual(reordering.shape, [3, 3, 3, 2])
        XCTAssertEqual(reordering.permutation, [3, 2, 0, 1])
        let undone = try TensorPermutation(shape: reordering.shape, permutation: reordering.permutation, elementSize: 4)
        XCTAssertEqual(try undone.apply(to: try original.bytes()), try lowered.storage.bytes(keep: false))
        XCTAssertNil(original.reordering)
    }
}

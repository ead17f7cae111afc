import ScionIR
import XCTest

@testable import ScionPasses

/// The N-d permutation every lazy weight change relies on, against a direct index-by-index reference.
final class TensorPermutationTests: XCTestCase {
    /// output[i...] = input[j...] with j[permutation[k]] = i[k], computed the slow obvious way.
    func reference(_ input: [UInt8], shape: [Int], permutation: [Int], elementSize: Int) -> [UInt8] {
        let outputShape = permutation.map { shape[$0] }
        var result: [UInt8] = []
        for index in allIndices(outputShape) {
            var sourceIndex = [Int](repeating: 0, count: shape.count)
            for (axis, value) in index.enumerated() { sourceIndex[permutation[axis]] = value }
            let start = offset(sourceIndex, in: shape) * elementSize
            result += input[start..<(start + elementSize)]
        }
        return result
    }

    func testMatrixTranspose() throws {
        let permutation = try TensorPermutation(shape: [2, 3], permutation: [1, 0], elementSize: 4)
        XCTAssertEqual(permutation.permutedShape, [3, 2])
        let result = floats(try permutation.apply(to: floatBytes([0, 1, 2, 3, 4, 5])))
        XCTAssertEqual(result, [0, 3, 1, 4, 2, 5])
    }

    func testEveryPermutationOfSmallShapesMatchesReference() throws {
        // Shapes with length-1 axes and axes that stay adjacent exercise the merged-axis plan and the
        // whole-row copies.
        // [3, 2, 5, 37]: kernels whose contiguous axis is longer than the 16-wide tiles of the fast path.
        let shapes = [[2, 3, 4], [3, 1, 2, 4], [2, 3, 1, 5], [1, 4, 1, 3], [2, 2, 3, 2, 2], [5], [1, 1], [3, 2, 5, 37]]
        for shape in shapes {
            for elementSize in [1, 2, 3, 4, 8] {
                let count = (shape.checkedProduct ?? 0) * elementSize
                let input = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
                for permutation in permutations(of: Array(0..<shape.count)) {
                    let tensorPermutation = try TensorPermutation(shape: shape, permutation: permutation, elementSize: elementSize)
                    XCTAssertEqual(try tensorPermutation.apply(to: input),
                                   reference(input, shape: shape, permutation: permutation, elementSize: elementSize),
                                   "shape \(shape) permutation \(permutation) element size \(elementSize)")
                }
            }
        }
    }

    func testIdentityIsDetectedAcrossLengthOneAxes() throws {
        XCTAssertTrue(try TensorPermutation(shape: [1, 1, 4, 5], permutation: [1, 0, 2, 3], elementSize: 4).isIdentity)
        XCTAssertTrue(try TensorPermutation(shape: [4, 1, 5], permutation: [0, 2, 1], elementSize: 4).isIdentity)
        XCTAssertFalse(try TensorPermutation(shape: [4, 1, 5], permutation: [2, 1, 0], elementSize: 4).isIdentity)
    }

    func testBadShapesAndByteCountsAreRefused() throws {
        XCTAssertThrowsError(try TensorPermutation(shape: [2, 3], permutation: [0, 0], elementSize: 4))
        XCTAssertThrowsError(try TensorPermutation(shape: [2, 3], permutation: [0, 1, 2], elementSize: 4))
        XCTAssertThrowsError(try TensorPermutation(shape: [2, -3], permutation: [1, 0], elementSize: 4))
        XCTAssertThrowsError(try TensorPermutation(shape: [Int.max, 2], permutation: [1, 0], elementSize: 4))
        XCTAssertThrowsError(try TensorPermutation(shape: [Int.max / 2], permutation: [0], elementSize: 4))
        XCTAssertThrowsError(try TensorPermutation(shape: [2], permutation: [0], elementSize: 0))
        let permutation = try TensorPermutation(shape: [2, 3], permutation: [1, 0], elementSize: 4)
        XCTAssertThrowsError(try permutation.apply(to: floatBytes(count: 5))) { error in
            XCTAssertTrue("\(error)".contains("20 bytes"), "\(error)")
        }
    }

    func testSourceReadsItsBaseOnlyWhenAskedAndLeavesItUncached() throws {
        let counting = CountingSource(bytes: floatBytes([0, 1, 2, 3, 4, 5]))
        let base = TensorStorage(source: counting)
        let source = try PermutedTensorSource(
            base: base, permutation: try TensorPermutation(shape: [2, 3], permutation: [1, 0], elementSize: 4))
        let storage = TensorStorage(source: source)
        XCTAssertEqual(counting.reads, 0)
        XCTAssertEqual(storage.byteCount, 24)
        XCTAssertEqual(floats(try storage.bytes()), [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(counting.reads, 1)
        XCTAssertFalse(base.isLoaded, "the unpermuted bytes must not stay cached next to the permuted ones")
        XCTAssertTrue(storage.isLoaded)
        XCTAssertTrue(source.location.contains("counting"))
    }

    func testSourceRefusesABaseOfTheWrongSize() throws {
        let permutation = try TensorPermutation(shape: [2, 3], permutation: [1, 0], elementSize: 4)
        XCTAssertThrowsError(try PermutedTensorSource(base: TensorStorage(bytes: floatBytes(count: 4)), permutation: permutation))
    }

    func permutations(of values: [Int]) -> [[Int]] {
        guard values.count > 1 else { return [values] }
        return values.indices.flatMap { position -> [[Int]] in
            var rest = values
            let first = rest.remove(at: position)
            return permutations(of: rest).map { [first] + $0 }
        }
    }
}

import ScionIR
import XCTest

/// Roles are read from and written to files by name, so every name must come back exactly as read.
final class ParameterRoleTests: XCTestCase {
    func testNamesRoundTrip() {
        for name in ["kernel", "moving_mean", "recurrent_kernel", "var3", "forward_layer/cell/recurrent_kernel",
                     "query_dense/bias", "layer/moving_variance", ""] {
            XCTAssertEqual(ParameterRole(rawValue: name).rawValue, name)
        }
        XCTAssertEqual(ParameterRole(rawValue: "moving_mean"), .movingMean)
        XCTAssertEqual(ParameterRole(rawValue: "forward_layer/cell/recurrent_kernel"), .sublayer("forward_layer/cell", .recurrentKernel))
        XCTAssertEqual(ParameterRole(rawValue: "var3"), .other("var3"))
        // However a role was built, one name is one role.
        XCTAssertEqual(ParameterRole.other("kernel"), .kernel)
        XCTAssertEqual(Set([ParameterRole.other("bias"), .bias]).count, 1)
    }

    func testStatistics() {
        XCTAssertEqual([ParameterRole.movingMean, .movingVariance, .mean, .variance, .count].filter(\.isStatistic).count, 5)
        XCTAssertFalse([ParameterRole.kernel, .bias, .gamma, .beta, .alpha, .embeddings, .value, .other("running")].contains(where: \.isStatistic))
        // A statistic of a wrapped layer (TimeDistributed(BatchNormalization)) is still one.
        XCTAssertTrue(ParameterRole(rawValue: "layer/moving_mean").isStatistic)
        XCTAssertEqual(ParameterRole(rawValue: "layer/moving_mean").leaf, .movingMean)
    }
}

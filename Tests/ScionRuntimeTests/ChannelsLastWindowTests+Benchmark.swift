import Foundation
import ScionIR
@testable import ScionRuntime
import XCTest

/// The micro-benchmark of the channels-last window kernels against the channels-first ones, on the
/// shapes the keras.applications models run, printed side by side (milliseconds per call, fastest of
/// several, and the least CPU time). Only when asked, and only meaningful in release:
///
///     SCION_WINDOWS_BENCH=1 swift test -c release -Xswiftc -enable-testing \
///       --filter ChannelsLastWindowTests/testTimesAgainstChannelsFirstWhenAsked
///
/// It asserts nothing about time (the machine is shared); it checks the two agree on each shape.
extension ChannelsLastWindowTests {
    func testTimesAgainstChannelsFirstWhenAsked() throws {
        try XCTSkipUnless(ProcessInfo.processInfo.environment["SCION_WINDOWS_BENCH"] != nil, "set SCION_WINDOWS_BENCH=1 to time the window kernels")
        let filter = ProcessInfo.processInfo.environment["SCION_WINDOWS_BENCH_ONLY"] ?? ""
        var random = SplitMix64(seed: 5)
        print("kernel | shape (H x W x C, window, stride) | batch | channels-first ms | channels-last ms | speed-up | CPU ms: channels-first | channels-last | speed-up")
        // MobileNetV2 (3x3) and EfficientNetB0 (5x5) depthwise layers: input size, channels, kernel, stride.
        let depthwiseShapes = [(112, 96, 3, 2), (56, 144, 3, 1), (28, 192, 3, 1), (14, 576, 3, 1), (7, 960, 3, 1),
                               (14, 672, 5, 2), (7, 1152, 5, 1)]
        for (size, channels, k, stride) in depthwiseShapes where filter.isEmpty || filter == "depthwise" {
            for batch in [1, 32] {
                try benchDepthwise(batch: batch, size: size, channels: channels, kernel: k, stride: stride, random: &random)
            }
        }
        // ResNet50's and InceptionV3's 3x3/2 max pool, Inception's 3x3/1 average (padding not counted),
        // DenseNet121's 2x2/2 average.
        let poolings: [(Int, Int, PoolKind, Int, Int, Padding)] = [
            (112, 64, .max, 3, 2, .explicit([1, 1, 1, 1])), (147, 64, .max, 3, 2, .valid), (35, 192, .average, 3, 1, .same),
            (17, 768, .average, 3, 1, .same), (56, 128, .average, 2, 2, .valid), (28, 256, .average, 2, 2, .valid),
        ]
        for (size, channels, kind, k, stride, padding) in poolings where filter.isEmpty || filter == "pool" {
            let a = PoolAttributes(kind: kind, poolSize: [k, k], strides: [stride, stride], padding: padding, layout: .channelsFirst)
            for batch in [1, 32] {
                try benchPooling(batch: batch, size: size, channels: channels, a, random: &random)
            }
        }
        for (size, channels) in [(7, 1280), (7, 2048), (8, 2048)] where filter.isEmpty || filter == "global" {
            for batch in [1, 32] {
                benchGlobalPooling(batch: batch, size: size, channels: channels, random: &random)
            }
        }
    }

    func benchDepthwise(batch: Int, size: Int, channels: Int, kernel k: Int, stride: Int, random: inout SplitMix64) throws {
        let attributes = ConvAttributes(filters: channels, kernelSize: [k, k], strides: [stride, stride], dilations: [1, 1],
                                        padding: .same, groups: channels, useBias: false, layout: .channelsFirst)
        let logical = [batch, channels, size, size]
        let g = try Kernels.ConvGeometry(input: logical, kernelShape: [channels, 1, k, k], attributes, node: "depthwise")
        let x = RuntimeTensor(shape: logical, data: (0..<logical.reduce(1, *)).map { _ in random.uniform(-1, 1) })
        let weights = RuntimeTensor(shape: [channels, 1, k, k], data: (0..<(channels * k * k)).map { _ in random.uniform(-1, 1) })
        let input = Kernels.transpose(x, [0, 2, 3, 1]).data, tapMajor = Kernels.transpose(weights, [2, 3, 1, 0]).data
        var first = [Float](repeating: 0, count: batch * channels * g.oh * g.ow), last = first
        let channelsFirst = fastest {
            Kernels.depthwise(x.data, weights.data, &first, batch: batch, channels: channels, multiplier: 1, height: size, width: size,
                              kh: k, kw: k, sh: stride, sw: stride, dh: 1, dw: 1, top: g.top, left: g.left, oh: g.oh, ow: g.ow)
        }
        let channelsLast = fastest {
            input.withUnsafeBufferPointer { x in
                tapMajor.withUnsafeBufferPointer { w in
                    last.withUnsafeMutableBufferPointer { out in
                        Kernels.depthwiseChannelsLast(x.baseAddress!, kernel: w.baseAddress!, into: out.baseAddress!, g)
                    }
                }
            }
        }
        report("depthwise", "\(size)x\(size)x\(channels) \(k)x\(k) s\(stride)", batch, channelsFirst, channelsLast)
        assertClose(last, Kernels.transpose(RuntimeTensor(shape: g.outputShape, data: first), [0, 2, 3, 1]).data, "depthwise \(logical)")
    }

    func benchPooling(batch: Int, size: Int, channels: Int, _ a: PoolAttributes, random: inout SplitMix64) throws {
        let logical = [batch, channels, size, size]
        let x = RuntimeTensor(shape: logical, data: (0..<logical.reduce(1, *)).map { _ in random.uniform(-1, 1) })
        let input = Kernels.transpose(x, [0, 2, 3, 1]).data
        var first = RuntimeTensor(shape: [], data: []), last = [Float]()
        let channelsFirst = try fastestThrowing { first = try Kernels.pool(x, a, node: "pool") }
        let channelsLast = try fastestThrowing { last = try Kernels.poolChannelsLast(input, logical: logical, a, node: "pool") }
        report("\(a.kind) pool", "\(size)x\(size)x\(channels) \(a.poolSize[0])x\(a.poolSize[1]) s\(a.strides[0])", batch, channelsFirst, channelsLast)
        assertClose(last, Kernels.transpose(first, [0, 2, 3, 1]).data, "pooling \(logical)")
    }

    func benchGlobalPooling(batch: Int, size: Int, channels: Int, random: inout SplitMix64) {
        let logical = [batch, channels, size, size]
        let x = RuntimeTensor(shape: logical, data: (0..<logical.reduce(1, *)).map { _ in random.uniform(-1, 1) })
        let input = Kernels.transpose(x, [0, 2, 3, 1]).data
        var first = RuntimeTensor(shape: [], data: []), last = [Float]()
        let attributes = GlobalPoolAttributes(kind: .average, rank: 2, layout: .channelsFirst)
        let channelsFirst = fastest { first = Kernels.globalPool(x, attributes) }
        let channelsLast = fastest { last = Kernels.globalPoolChannelsLast(input, logical: logical, kind: .average) }
        report("global average", "\(size)x\(size)x\(channels)", batch, channelsFirst, channelsLast)
        assertClose(last, first.data, "global pooling \(logical)")
    }

    func report(_ kernel: String, _ shape: String, _ batch: Int, _ channelsFirst: Timing, _ channelsLast: Timing) {
        func ms(_ value: Double) -> String { String(format: "%.3f", value) }
        print("\(kernel) | \(shape) | \(batch) | \(ms(channelsFirst.wall)) | \(ms(channelsLast.wall)) | "
              + String(format: "%.1fx", channelsFirst.wall / channelsLast.wall)
              + " | \(ms(channelsFirst.cpu)) | \(ms(channelsLast.cpu)) | " + String(format: "%.1fx", channelsFirst.cpu / channelsLast.cpu))
    }

    /// Milliseconds per call: the fastest wall time, and the least CPU time (all threads) a call took,
    /// the steadier of the two on a shared machine.
    struct Timing { var wall = Double.infinity, cpu = Double.infinity }

    /// The best of at least 3 runs, more for quick calls (up to about half a second).
    func fastest(_ body: () -> Void) -> Timing {
        func cpuNow() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
            return Double(time.tv_sec) * 1e3 + Double(time.tv_nsec) / 1e6
        }
        var best = Timing(), spent = 0.0, runs = 0
        while runs < 3 || (spent < 500 && runs < 200) {
            let (start, cpuStart) = (DispatchTime.now().uptimeNanoseconds, cpuNow())
            body()
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            best = Timing(wall: min(best.wall, elapsed), cpu: min(best.cpu, cpuNow() - cpuStart))
            (spent, runs) = (spent + elapsed, runs + 1)
        }
        return best
    }

    func fastestThrowing(_ body: () throws -> Void) throws -> Timing {
        var failure: Error?
        let time = fastest {
            do { try body() } catch { failure = error }
        }
        if let failure { throw failure }
        return time
    }
}

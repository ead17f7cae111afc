import Foundation
import ScionIR

// Placeholder versions of the channels-last window kernels (the s11-windows branch brings the fast ones).
extension Kernels {
    static func depthwiseChannelsLast(_ x: UnsafePointer<Float>, kernel: UnsafePointer<Float>,
                                      into output: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
        let c = g.channels
        for n in 0..<g.batch {
            for oy in 0..<g.oh {
                for ox in 0..<g.ow {
                    let out = output + ((n * g.oh + oy) * g.ow + ox) * c
                    out.update(repeating: 0, count: c)
                    for ky in 0..<g.kh {
                        let y = oy * g.sh + ky * g.dh - g.top
                        if y < 0 || y >= g.height { continue }
                        for kx in 0..<g.kw {
                            let xx = ox * g.sw + kx * g.dw - g.left
                            if xx < 0 || xx >= g.width { continue }
                            let input = x + ((n * g.height + y) * g.width + xx) * c
                            let w = kernel + (ky * g.kw + kx) * c
                            for ch in 0..<c { out[ch] += w[ch] * input[ch] }
                        }
                    }
                }
            }
        }
    }

    static func poolRunsChannelsLast(_ a: PoolAttributes) -> Bool { a.isDense }

    static func poolChannelsLast(_ x: [Float], logical: [Int], _ a: PoolAttributes, node: String) throws -> [Float] {
        let t = RuntimeTensor(shape: logical, data: relayout(RuntimeTensor(shape: [logical[0], logical[2], logical[3], logical[1]], data: x), toChannelsLast: false).data)
        return relayout(try pool(t, a, node: node), toChannelsLast: true).data
    }

    static func globalPoolChannelsLast(_ x: [Float], logical: [Int], kind: PoolKind) -> [Float] {
        let t = RuntimeTensor(shape: logical, data: relayout(RuntimeTensor(shape: [logical[0], logical[2], logical[3], logical[1]], data: x), toChannelsLast: false).data)
        return globalPool(t, GlobalPoolAttributes(kind: kind, rank: 2, keepDimensions: true, layout: .channelsFirst)).data
    }
}

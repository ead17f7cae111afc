import Foundation

/// Training samples too many to hold as one tensor (a folder of images): read in order batch by
/// batch, or a few rows at a time in any order (an epoch's shuffle). A source may leave samples out
/// (a broken image skipped): a full pass in order says which, and rows and targets then count only
/// the kept ones.
public protocol StreamedSamples: AnyObject, Sendable {
    /// The samples listed, kept or not.
    var listedCount: Int { get }
    /// The shape of one sample, as the model takes it.
    var sampleShape: [Int] { get }
    /// Every sample in order, `size` at a time (fewer when some are left out), as model inputs;
    /// afterwards `keptCount`, `targets` and `rows` describe the samples this pass kept.
    func forEachBatch(size: Int, _ body: (RuntimeTensor) throws -> Void) throws
    /// The samples the last full pass kept.
    var keptCount: Int { get }
    /// Their targets, first axis the sample.
    var targets: RuntimeTensor { get }
    /// Kept samples `rows` (indices below `keptCount`), read again.
    func rows(_ rows: [Int]) throws -> RuntimeTensor
}

extension Trainer {
    /// Bytes of decoded inputs kept in memory when the frozen prefix cannot be cached (there is none,
    /// or its outputs are too large): above it, each epoch reads its batches again from the source.
    /// SCION_INPUT_CACHE_BYTES overrides it (tests set it small to take the streaming path).
    public static var inputCacheBytes: Int {
        ProcessInfo.processInfo.environment["SCION_INPUT_CACHE_BYTES"].flatMap { Int($0) } ?? (1 << 30)
    }

    /// `features(of:)` for streamed samples: one pass in order runs the frozen prefix on each batch
    /// as it arrives and keeps only its outputs (features, not pixels), so memory holds the features
    /// and a few batches. Without a prefix to cache, or when its outputs would pass `memoryLimit`,
    /// the inputs are kept while they fit in `inputCacheBytes` (which also bounds a weightless prefix's
    /// outputs: they are the pixels rearranged); else the features say to read rows
    /// from `source` again in every step.
    public func features(streaming source: any StreamedSamples, batchSize: Int = 64, memoryLimit: Int = 2 << 30,
                         inputCacheBytes: Int = Trainer.inputCacheBytes) throws -> Features {
        let listed = source.listedCount
        let perSample = frontier.reduce(0) { total, name in
            total + (graph.values[name]?.shape?.dimensions.dropFirst().reduce(1) { $0 * ($1 ?? 1) } ?? 1)
        }
        let inputValues = source.sampleShape.reduce(1, *)
        // A prefix without weights only reshapes the pixels: its outputs count as pixels.
        let cachesPrefix = prefix != nil && perSample * listed * 4 <= (prefixHasWeights ? memoryLimit : inputCacheBytes)
        let keepsInputs = !cachesPrefix && inputValues * listed * 4 <= inputCacheBytes
        var parts: [String: [Float]] = [:], shapes: [String: [Int]] = [:]
        try source.forEachBatch(size: batchSize) { x in
            let values: [String: RuntimeTensor]
            if cachesPrefix, let prefix { values = try prefixValues(prefix, x) } else if keepsInputs { values = [inputName: x] } else { return }
            for (name, value) in values {
                parts[name, default: []].append(contentsOf: value.data)
                shapes[name] = Array(value.shape.dropFirst())
            }
        }
        let kept = source.keptCount
        guard cachesPrefix || keepsInputs else { return Features(cached: [:], inputs: nil, source: source, count: kept) }
        var cached: [String: RuntimeTensor] = [:]
        for (name, values) in parts { cached[name] = RuntimeTensor(shape: [kept] + (shapes[name] ?? []), data: values) }
        if keepsInputs, prefix != nil {
            // The inputs, not the prefix's outputs, are what is kept: each step runs the prefix on its rows.
            return Features(cached: [:], inputs: cached[inputName] ?? RuntimeTensor(shape: [0] + source.sampleShape, data: []), count: kept)
        }
        return Features(cached: cached, inputs: nil, count: kept)
    }
}

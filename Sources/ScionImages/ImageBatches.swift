import Dispatch
import Foundation

/// Decode then resize: what Keras's `_load_image_tf` does for one path.
public struct ImagePipeline: Sendable {
    public var decode: DecodeOptions
    public var resize: ResizeOptions

    public init(decode: DecodeOptions = DecodeOptions(), resize: ResizeOptions) {
        self.decode = decode
        self.resize = resize
    }

    /// `resize.height x resize.width x decode.channels` float32 values in 0...255.
    public func load(_ path: String) throws(ImageError) -> [Float] {
        ImageResizer.resize(try ImageDecoder.decode(file: path, options: decode), resize)
    }

    public var valuesPerImage: Int { resize.height * resize.width * decode.channels }
}

public enum BadImagePolicy: String, Sendable {
    /// Leave the image out of its batch; the batch lists it in `failures`.
    case skip
    /// Stop: the stream throws the first bad image's error.
    case fail
}

public struct ImageBatch: Sendable {
    /// `count x height x width x channels` (NHWC), float32 in 0...255.
    public var pixels: [Float]
    public var labels: [Int]
    public var files: [String]
    public var failures: [ImageError]
    public var count: Int { labels.count }
}

/// Samples read as a sequence of batches, each decoded in parallel (one task per image) and the next
/// one decoded in the background while the caller works on the current one: at most two batches of
/// pixels exist at a time besides the caller's, however large the folder.
public struct ImageBatches: Sendable {
    public var samples: [ImageSample]
    public var batchSize: Int
    public var pipeline: ImagePipeline
    public var policy: BadImagePolicy

    public init(samples: [ImageSample], batchSize: Int, pipeline: ImagePipeline, policy: BadImagePolicy = .skip) {
        self.samples = samples
        self.batchSize = max(1, batchSize)
        self.pipeline = pipeline
        self.policy = policy
    }

    public var batchCount: Int { (samples.count + batchSize - 1) / batchSize }

    /// Batch `index` decoded now, its images in parallel, each resized straight into the batch's buffer.
    public func batch(_ index: Int) throws(ImageError) -> ImageBatch {
        let range = (index * batchSize)..<min(samples.count, (index + 1) * batchSize)
        let size = pipeline.valuesPerImage
        let failures = Slots<ImageError>(count: range.count)
        let pipeline = pipeline, samples = samples
        var pixels = [Float](unsafeUninitializedCapacity: range.count * size) { buffer, count in
            let output = SendableBuffer(buffer)
            DispatchQueue.concurrentPerform(iterations: range.count) { offset in
                let slice = UnsafeMutableBufferPointer(rebasing: output.buffer[(offset * size)..<((offset + 1) * size)])
                do throws(ImageError) {
                    let image = try ImageDecoder.decode(file: samples[range.lowerBound + offset].path, options: pipeline.decode)
                    ImageResizer.resize(image, pipeline.resize, into: slice)
                } catch {
                    slice.update(repeating: 0)
                    failures.set(offset, error)
                }
            }
            count = buffer.count
        }
        var batch = ImageBatch(pixels: [], labels: [], files: [], failures: [])
        var kept = 0
        for (offset, failure) in failures.values.enumerated() {
            if let failure {
                if policy == .fail { throw failure }
                batch.failures.append(failure)
                continue
            }
            // Good images move up over the bad ones' rows.
            if kept != offset {
                pixels.withUnsafeMutableBufferPointer { $0.baseAddress.map { base in
                    (base + kept * size).update(from: base + offset * size, count: size)
                } }
            }
            kept += 1
            batch.labels.append(samples[range.lowerBound + offset].label)
            batch.files.append(samples[range.lowerBound + offset].path)
        }
        pixels.removeLast((range.count - kept) * size)
        batch.pixels = pixels
        return batch
    }

    /// The batches in order, `ahead` of them decoding in the background while the caller works.
    public func makeStream(ahead: Int = 2) -> ImageBatchStream { ImageBatchStream(batches: self, ahead: ahead) }
}

/// Batches in order, the next `ahead` prefetched (a bounded queue: at most `ahead` batches of pixels
/// wait besides the caller's, however large the folder). `next()` returns nil after the last.
public final class ImageBatchStream {
    private let batches: ImageBatches
    private let ahead: Int
    private var nextIndex = 0
    private var queued: [Pending] = []

    init(batches: ImageBatches, ahead: Int) {
        self.batches = batches
        self.ahead = max(1, ahead)
    }

    public func next() throws(ImageError) -> ImageBatch? {
        guard nextIndex < batches.batchCount else { return nil }
        // Keep the queue full: this batch and up to `ahead` after it are decoding.
        while queued.count <= ahead, nextIndex + queued.count < batches.batchCount {
            queued.append(Pending(batches, nextIndex + queued.count))
        }
        let current = queued.removeFirst()
        nextIndex += 1
        return try current.wait().get()
    }

    /// One batch being decoded on a background queue.
    private final class Pending: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<ImageBatch, ImageError>?   // written once, before `done` is signalled

        init(_ batches: ImageBatches, _ index: Int) {
            DispatchQueue.global().async { [self] in
                result = Result { () throws(ImageError) -> ImageBatch in try batches.batch(index) }
                done.signal()
            }
        }

        func wait() -> Result<ImageBatch, ImageError> {
            done.wait()
            done.signal()
            return result ?? .failure(ImageError(file: "", reason: .folder("batch not decoded")))
        }
    }
}

/// A batch's buffer, written by concurrent tasks at disjoint offsets.
private struct SendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Float>
    init(_ buffer: UnsafeMutableBufferPointer<Float>) { self.buffer = buffer }
}

/// Results written from concurrent tasks, one slot each.
private final class Slots<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [Value?]

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: Value) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }

    var values: [Value?] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}

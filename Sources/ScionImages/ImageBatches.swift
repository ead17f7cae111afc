import Dispatch
import Foundation

/// Changes one resized image in place (`height x width x channels`, channels-last, float32 in 0...255
/// on entry): a model's input preprocessing, run by the task that decoded the image.
public typealias PixelTransform = @Sendable (UnsafeMutableBufferPointer<Float>) -> Void

/// Decode then resize: what Keras's `_load_image_tf` does for one path; then, optionally, the model's
/// preprocessing and its channels-first order. Whatever the batches do to each image is done here,
/// by the decoding tasks in parallel, rather than as passes over whole batches on the caller's thread.
public struct ImagePipeline: Sendable {
    public var decode: DecodeOptions
    public var resize: ResizeOptions
    /// Applied to each image after resizing (channels-last, whatever `channelsFirst` says).
    public var transform: PixelTransform?
    /// Images come out `channels x height x width` (an NCHW model's input) instead of HWC.
    public var channelsFirst: Bool

    public init(decode: DecodeOptions = DecodeOptions(), resize: ResizeOptions, transform: PixelTransform? = nil,
                channelsFirst: Bool = false) {
        self.decode = decode
        self.resize = resize
        self.transform = transform
        self.channelsFirst = channelsFirst
    }

    /// One image: `resize.height x resize.width x decode.channels` values (CHW when `channelsFirst`),
    /// float32 in 0...255 unless `transform` says otherwise.
    public func load(_ path: String) throws(ImageError) -> [Float] {
        let image = try ImageDecoder.decode(file: path, options: decode)
        return [Float](unsafeUninitializedCapacity: valuesPerImage) { buffer, count in
            finish(image, into: buffer)
            count = buffer.count
        }
    }

    /// `image` resized, transformed and laid out into `output` (exactly `valuesPerImage` values).
    public func finish(_ image: DecodedImage, into output: UnsafeMutableBufferPointer<Float>) {
        guard channelsFirst, decode.channels > 1 else {
            ImageResizer.resize(image, resize, into: output)
            transform?(output)
            return
        }
        // Resized channels-last into a scratch image, then each channel gathered into its plane.
        let channels = decode.channels, pixelCount = resize.height * resize.width
        withUnsafeTemporaryAllocation(of: Float.self, capacity: valuesPerImage) { scratch in
            ImageResizer.resize(image, resize, into: scratch)
            transform?(scratch)
            for channel in 0..<channels {
                let plane = channel * pixelCount
                for pixel in 0..<pixelCount { output[plane + pixel] = scratch[pixel * channels + channel] }
            }
        }
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
    /// `count` images as the pipeline lays them out: NHWC, or NCHW when `channelsFirst`; float32 in
    /// 0...255 unless its transform says otherwise.
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

    /// Batch `index` decoded now, its images in parallel, each resized (and transformed) straight into
    /// the batch's buffer: `spare`'s storage when it is large enough (a batch the caller is done
    /// with, given as its last reference so it is written in place), else a new one.
    public func batch(_ index: Int, reusing spare: consuming [Float] = []) throws(ImageError) -> ImageBatch {
        let range = (index * batchSize)..<min(samples.count, (index + 1) * batchSize)
        let size = pipeline.valuesPerImage, count = range.count * size
        let failures = Slots<ImageError>(count: range.count)
        let pipeline = pipeline, samples = samples
        var pixels = consume spare
        if pixels.capacity < count {
            // Every value is written below (a failed image's with zeros): no need to clear them first.
            pixels = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        } else if pixels.count > count {
            pixels.removeLast(pixels.count - count)
        } else if pixels.count < count {
            pixels.append(contentsOf: repeatElement(0, count: count - pixels.count))
        }
        pixels.withUnsafeMutableBufferPointer { buffer in
            let output = SendableBuffer(buffer)
            DispatchQueue.concurrentPerform(iterations: range.count) { offset in
                let slice = UnsafeMutableBufferPointer(rebasing: output.buffer[(offset * size)..<((offset + 1) * size)])
                do throws(ImageError) {
                    let image = try ImageDecoder.decode(file: samples[range.lowerBound + offset].path, options: pipeline.decode)
                    pipeline.finish(image, into: slice)
                } catch {
                    slice.update(repeating: 0)
                    failures.set(offset, error)
                }
            }
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
/// wait besides the caller's, however large the folder). `next()` returns nil after the last. A
/// caller done with a batch's pixels can `recycle` them: the batches after write into that memory
/// rather than new memory, whose first write costs a page fault per 4 KB (as much CPU as resizing
/// into it, measured on 224x224 batches of 64).
public final class ImageBatchStream {
    private let batches: ImageBatches
    private let ahead: Int
    private var nextIndex = 0
    private var queued: [Pending] = []
    private let spares: SpareBuffers

    init(batches: ImageBatches, ahead: Int) {
        self.batches = batches
        self.ahead = max(1, ahead)
        spares = SpareBuffers(limit: self.ahead + 1)
    }

    public func next() throws(ImageError) -> ImageBatch? {
        guard nextIndex < batches.batchCount else { return nil }
        // Keep the queue full: this batch and up to `ahead` after it are decoding.
        while queued.count <= ahead, nextIndex + queued.count < batches.batchCount {
            queued.append(Pending(batches, nextIndex + queued.count, spares: spares))
        }
        let current = queued.removeFirst()
        nextIndex += 1
        return try current.wait().get()
    }

    /// A batch's pixels the caller no longer needs (pass the last reference: `consume`), for a later batch to fill.
    public func recycle(_ pixels: consuming [Float]) {
        spares.put(pixels)
    }

    /// One batch being decoded on a background queue.
    private final class Pending: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<ImageBatch, ImageError>?   // written once, before `done` is signalled

        init(_ batches: ImageBatches, _ index: Int, spares: SpareBuffers) {
            DispatchQueue.global().async { [self] in
                result = Result { () throws(ImageError) -> ImageBatch in try batches.batch(index, reusing: spares.take()) }
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

/// Recycled batch buffers, at most `limit` kept.
private final class SpareBuffers: @unchecked Sendable {
    private let lock = NSLock()
    private var buffers: [[Float]] = []
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func put(_ pixels: consuming [Float]) {
        lock.lock()
        defer { lock.unlock() }
        if buffers.count < limit { buffers.append(pixels) }
    }

    /// A buffer, or an empty array when none is spare.
    func take() -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        return buffers.popLast() ?? []
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

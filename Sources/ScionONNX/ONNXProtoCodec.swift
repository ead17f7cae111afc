#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CProtobufC
import ONNXProto

/// Turns ONNX protobuf bytes into the Swift mirrors of `ONNXMessages.swift` and back, through the
/// C code protoc-c generated from `proto/onnx.proto`. The rest of ScionONNX never sees C pointers.
///
/// Files are untrusted: every count, size and nesting level is checked before it is used, and every
/// problem is an `ONNXError` naming the file and the tensor, node or field concerned.
package enum ONNXProtoCodec {
    /// Subgraphs (If branches, Loop and Scan bodies) nested deeper than this are refused, on reading
    /// and on writing: real models nest a few levels, and the limit keeps both the recursive
    /// conversion and protobuf-c's recursive parser far from the end of the stack.
    package static let maximumSubgraphDepth = 32

    /// Decodes a whole `ModelProto`.
    ///
    /// - Parameters:
    ///   - bytes: the serialized model; only read during the call.
    ///   - file: how errors name the model (usually its path).
    package static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> ONNXModel {
        try decode(bytes, file: file, payloads: nil)
    }

    /// `payloads`: the mapped file the large `raw_data` payloads were taken out of (`bytes` holding
    /// markers in their place), or nil.
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String, payloads: ONNXMappedPayloads?) throws -> ONNXModel {
        guard bytes.count > 0, let base = bytes.baseAddress else {
            throw ONNXError(.invalidProtobuf, file: file, "the file is empty, not an ONNX model")
        }
        // protobuf-c parses nested messages recursively and has no depth limit of its own, so a
        // hostile file of a few kilobytes could exhaust the stack: measure the nesting first.
        try ONNXProtoNestingCheck.check(bytes, file: file)

        let budget = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { budget.deallocate() }
        budget.initialize(to: allocationBudget(forInputCount: bytes.count))
        var allocator = budgetedAllocator(budget)

        guard let message = onnx__model_proto__unpack(&allocator, bytes.count,
                                                      base.assumingMemoryBound(to: UInt8.self)) else {
            if budget.pointee < 0 {
                throw ONNXError(.invalidProtobuf, file: file,
                                "not an ONNX model (parsing it would need far more memory than its size justifies)")
            }
            throw ONNXError(.invalidProtobuf, file: file, "not an ONNX model (protobuf parse failed)")
        }
        defer { onnx__model_proto__free_unpacked(message, &allocator) }
        return try ONNXProtoDecoder(file: file, payloads: payloads).model(message)
    }

    /// Decodes the model in the file at `path`, memory-mapping it rather than reading it into an
    /// array, so a 2 GB model costs address space and page cache rather than a second copy. The main
    /// graph's large initializers stay there: lazy ranges of the mapping (`ONNXMappedPayloads`).
    package static func decode(contentsOf path: String) throws -> ONNXModel {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ONNXError(.invalidProtobuf, file: path, "cannot be opened: \(systemErrorDescription())")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let reason = systemErrorDescription()
            close(descriptor)
            throw ONNXError(.invalidProtobuf, file: path, "cannot be examined: \(reason)")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            throw ONNXError(.invalidProtobuf, file: path, "is not a regular file")
        }
        let size = Int(status.st_size)
        guard size > 0 else {
            close(descriptor)
            throw ONNXError(.invalidProtobuf, file: path, "the file is empty, not an ONNX model")
        }
        let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        // The mapping keeps the file's pages reachable; the descriptor is no longer needed.
        close(descriptor)
        guard let mapping, mapping != MAP_FAILED else {
            throw ONNXError(.invalidProtobuf, file: path, "cannot be mapped into memory: \(systemErrorDescription())")
        }
        let payloads = ONNXMappedPayloads(mapping: UnsafeRawPointer(mapping), byteCount: size)
        if let stripped = payloads.stripped() {
            return try stripped.withUnsafeBytes { try decode($0, file: path, payloads: payloads) }
        }
        return try decode(UnsafeRawBufferPointer(start: mapping, count: size), file: path, payloads: nil)
    }

    /// Writes `model` to `path` (created or truncated), streaming the main graph's initializers one
    /// at a time: a `.storage` initializer is read just before it is written and released right
    /// after, so the whole model is never in memory at once. On failure the partial file is
    /// removed; writing to a temporary path and renaming is the caller's business.
    ///
    /// - Parameter file: how errors name the model (the final path when `path` is a temporary one).
    package static func write(_ model: ONNXModel, to path: String, file: String) throws {
        try ONNXProtoStreamWriter(file: file).write(model, to: path)
    }

    /// How much protobuf-c may allocate while parsing `count` bytes. Legitimate models need at most
    /// about twenty times their size (a tiny node or dimension becomes a C struct of a hundred
    /// bytes or so; weights cost once their size), while a hostile file of empty nested messages
    /// could ask for a hundred times: the budget lets the first through and stops the second before
    /// it takes the machine's memory.
    static func allocationBudget(forInputCount count: Int) -> Int {
        let scaled = count.multipliedReportingOverflow(by: 32)
        guard !scaled.overflow else { return .max }
        let total = scaled.partialValue.addingReportingOverflow(512 << 20)
        return total.overflow ? .max : total.partialValue
    }

    /// A protobuf-c allocator that refuses once `budget` bytes have been handed out, leaving -1 in
    /// `budget` so the caller can tell the cause. protobuf-c treats a refused allocation as a failed
    /// parse and frees what it had built.
    private static func budgetedAllocator(_ budget: UnsafeMutablePointer<Int>) -> ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in
                guard let remaining = data?.assumingMemoryBound(to: Int.self), size <= remaining.pointee else {
                    data?.assumingMemoryBound(to: Int.self).pointee = -1
                    return nil
                }
                remaining.pointee -= size
                // malloc(0) may return NULL, which protobuf-c would take for running out of memory.
                return malloc(Swift.max(size, 1))
            },
            free: { _, pointer in free(pointer) },
            allocator_data: UnsafeMutableRawPointer(budget)
        )
    }
}

/// The text of the current `errno`, for messages.
func systemErrorDescription() -> String {
    String(cString: strerror(errno))
}

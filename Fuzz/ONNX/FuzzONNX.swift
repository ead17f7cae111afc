import ScionONNX

/// libFuzzer target: bytes as an ONNX model, decoded and imported into the IR. Any thrown error is
/// a correct answer; a crash, a hang or an unbounded allocation is a bug (see docs/hostile-inputs.md).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let model = try? ONNXProtoCodec.decode(bytes, file: "fuzz.onnx"),
       var graph = try? ONNXImporter.importModel(model, file: "fuzz.onnx", folder: "/nonexistent-fuzz-folder") {
        try? graph.verify()
    }
    return 0
}

/// The executable's entry (SwiftPM links `main` to `FuzzONNX_main`): hands the arguments to libFuzzer.
@_cdecl("FuzzONNX_main")
public func fuzzONNXMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzONNX(data ?? UnsafePointer(bitPattern: 1)!, size) }
}

/// libFuzzer's driver (linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

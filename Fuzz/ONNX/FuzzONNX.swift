import ScionONNX
import FuzzSupport

/// libFuzzer target: bytes as an ONNX model, decoded and imported into the IR. Any thrown error is
/// a correct answer; a crash, a hang or an unbounded allocation is a bug (docs/hostile-inputs.md).
@_cdecl("FuzzONNX_main")
public func fuzzONNXMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        let bytes = fuzzBytes(data, size)
        if let model = try? ONNXProtoCodec.decode(bytes, file: "fuzz.onnx"),
           var graph = try? ONNXImporter.importModel(model, file: "fuzz.onnx", folder: "/nonexistent-fuzz-folder") {
            try? graph.verify()
        }
        return 0
    }
}

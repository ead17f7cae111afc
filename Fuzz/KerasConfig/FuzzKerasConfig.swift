import Foundation
import FuzzSupport
import ScionKeras

/// libFuzzer target: bytes as a Keras model config (config.json / model_config): parsed, built into
/// the IR, shapes inferred. Any thrown error is a correct answer; a crash or a hang is a bug.
@_cdecl("FuzzKerasConfig_main")
public func fuzzKerasConfigMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        _ = try? KerasModelReader.readArchitecture(configJSON: Data(fuzzBytes(data, size)), file: "fuzz.json")
        return 0
    }
}

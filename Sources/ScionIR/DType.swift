/// Element type of a tensor.
public enum DType: String, Sendable, CaseIterable, Codable {
    case float16, bfloat16, float32, float64
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    case bool, string

    /// Bytes per element; strings have no fixed size.
    public var byteSize: Int? {
        switch self {
        case .bool, .int8, .uint8: 1
        case .float16, .bfloat16, .int16, .uint16: 2
        case .float32, .int32, .uint32: 4
        case .float64, .int64, .uint64: 8
        case .string: nil
        }
    }

    /// True for the float types (float16, bfloat16, float32, float64).
    public var isFloatingPoint: Bool {
        switch self {
        case .float16, .bfloat16, .float32, .float64: true
        default: false
        }
    }

    /// Reads the names Keras and numpy use (`"float32"`, `"int64"`, `"bool"`...).
    package init?(kerasName: String) {
        switch kerasName {
        case "half": self = .float16
        case "float": self = .float32
        case "double": self = .float64
        default: self.init(rawValue: kerasName)
        }
    }
}

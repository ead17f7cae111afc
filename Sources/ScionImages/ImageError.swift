/// Why an image file could not be read: the file and one reason, printed as `FILE: reason` (the
/// command prefixes `error: `). Folder indexing reports skipped links with the same type, so a
/// caller handles every bad file one way (`--on-bad-image skip|fail`).
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Reason: Equatable, Sendable {
        case unreadable(String)
        case empty
        case notAnImage
        /// A known image format Scion does not decode (BMP, GIF: Keras lists them).
        case unsupportedFormat(String)
        case tooManyPixels(width: Int, height: Int, limit: Int)
        case noPixels
        case truncated
        /// The codec's own message (libjpeg-turbo's or libpng's): a bad CRC, a damaged marker...
        case damaged(String)
        case symbolicLink(target: String)
        case linkLeavesFolder(target: String, folder: String)
        /// The data folder itself: missing, no class folders, class names that are not its folders...
        case folder(String)
    }

    public var file: String
    public var reason: Reason

    public init(file: String, reason: Reason) {
        self.file = file
        self.reason = reason
    }

    public var description: String { "\(file): \(reasonDescription)" }

    public var reasonDescription: String {
        switch reason {
        case .unreadable(let why): return "cannot be read: \(why)"
        case .empty: return "is empty"
        case .notAnImage: return "is not an image (neither JPEG nor PNG by its first bytes)"
        case .unsupportedFormat(let format): return "is a \(format) image; Scion decodes JPEG and PNG only"
        case .tooManyPixels(let width, let height, let limit):
            return "declares \(width) x \(height) pixels, more than the limit of \(limit) (a decompression bomb?)"
        case .noPixels: return "declares an image with no pixels (zero width or height)"
        case .truncated: return "is truncated (the image data ends early)"
        case .damaged(let message): return "is damaged: \(message)"
        case .symbolicLink(let target): return "is a symbolic link (to \(target)); links are not followed unless asked"
        case .linkLeavesFolder(let target, let folder):
            return "is a symbolic link to \(target), outside the data folder \(folder); not followed"
        case .folder(let why): return why
        }
    }
}

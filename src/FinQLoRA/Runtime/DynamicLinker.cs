using System.Runtime.InteropServices;

namespace FinQLoRA.Runtime;

/// <summary>
/// dlopen with an explicit binding mode. NativeLibrary.Load binds lazily, so a shim built for another libtorch
/// loads fine and the process dies later, at the first call of a missing symbol ("symbol lookup error"), with no
/// way to catch it. Binding the shim with RTLD_NOW turns that into a load error naming the symbol. The handle is
/// the same kind NativeLibrary returns on Linux, so a DllImport resolver can hand it out.
/// </summary>
internal static partial class DynamicLinker
{
    private const int RtldLazy = 0x1;
    private const int RtldNow = 0x2;

    /// <summary>Opens <paramref name="path"/>; on failure returns IntPtr.Zero and the dynamic linker's message.</summary>
    public static IntPtr Open(string path, bool bindNow, out string error)
    {
        int mode = bindNow ? RtldNow : RtldLazy;
        IntPtr handle;
        // dlerror is called once first: that binds its P/Invoke stub now, since binding it after a failed dlopen
        // would go through dlsym, which clears the very message we want; it also drops any stale message.
        try
        {
            LibcErrorPointer();
            handle = LibcOpen(path, mode);
            error = handle == IntPtr.Zero ? LibcError() : "";
        }
        catch (EntryPointNotFoundException)
        {
            // glibc before 2.34 keeps dlopen in libdl.so.2
            LibdlErrorPointer();
            handle = LibdlOpen(path, mode);
            error = handle == IntPtr.Zero ? LibdlError() : "";
        }
        return handle;
    }

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr LibcOpen(string path, int mode);

    [LibraryImport("libc", EntryPoint = "dlerror")]
    private static partial IntPtr LibcErrorPointer();

    [LibraryImport("libdl.so.2", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr LibdlOpen(string path, int mode);

    [LibraryImport("libdl.so.2", EntryPoint = "dlerror")]
    private static partial IntPtr LibdlErrorPointer();

    private static string LibcError() => Marshal.PtrToStringUTF8(LibcErrorPointer()) ?? "unknown dlopen error";

    private static string LibdlError() => Marshal.PtrToStringUTF8(LibdlErrorPointer()) ?? "unknown dlopen error";
}

/* A stand-in for Windows 10/11's bcryptprimitives.dll, for test prefixes of wine 8,
 * which lacks ProcessPrng: Rust's standard library calls it at start for its random
 * keys. It forwards to RtlGenRandom (advapi32's SystemFunction036), wine's system
 * random source. Real Windows has the real DLL; this one is never installed there. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

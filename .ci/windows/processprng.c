/*
 * bcryptprimitives.dll shim for Wine 8, whose own bcryptprimitives.dll lacks
 * ProcessPrng, the entry point Rust's standard library uses for random bytes
 * on Windows (HashMap seeds). This DLL exports ProcessPrng on top of
 * RtlGenRandom (advapi32!SystemFunction036). Used only by the CI Windows lane.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

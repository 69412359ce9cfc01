/**
 * @file host_main.c
 * @brief Host harness for the native engine: runs g_se_plan on every record of an input file.
 *
 * Usage: engine_host IN.bin OUT.bin
 *   IN.bin  concatenated inputs, SE_PLAN_INPUT_BYTES int8 each
 *   OUT.bin receives SE_PLAN_OUTPUT_BYTES int8 per input
 * Exit status 0 on success. Used by tests/test_engine.py (plain and ASan/UBSan builds).
 */
#include <stdio.h>
#include <stdlib.h>

#include "model_plan.h"
#include "se_engine.h"

static _Alignas(8) uint8_t s_arena[SE_PLAN_ARENA_BYTES + 8];

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.bin OUT.bin\n", argv[0]);
        return 2;
    }
    FILE *fi = fopen(argv[1], "rb");
    FILE *fo = fopen(argv[2], "wb");
    if (fi == NULL || fo == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    static int8_t in[SE_PLAN_INPUT_BYTES];
    static int8_t out[SE_PLAN_OUTPUT_BYTES];
    int records = 0;
    while (fread(in, 1, sizeof in, fi) == sizeof in) {
        const int rc = se_engine_run(&g_se_plan, s_arena, SE_PLAN_ARENA_BYTES, in, out);
        if (rc != SE_ENGINE_OK) {
            fprintf(stderr, "se_engine_run failed: %d\n", rc);
            return 1;
        }
        if (fwrite(out, 1, sizeof out, fo) != sizeof out) {
            return 1;
        }
        ++records;
    }
    fclose(fi);
    fclose(fo);
    printf("records=%d arena=%u macs=%u\n", records, (unsigned)SE_PLAN_ARENA_BYTES, (unsigned)SE_PLAN_MACS);
    return 0;
}

/**
 * @file native_main.c
 * @brief Host harness for se_model_native.c: the se_model.h API over an exported model.
 *
 * Usage: engine_native IN.bin OUT.bin  (SE_EPOCH_SAMPLES int8 per record in, SE_N_CLASSES out).
 * Prints "hash=... in_scale=... in_zp=... out_scale=... out_zp=... arena=... uninit_rc=..." first.
 */
#include <stdio.h>

#include "se_model.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.bin OUT.bin\n", argv[0]);
        return 2;
    }
    static int8_t in[SE_EPOCH_SAMPLES];
    static int8_t out[SE_N_CLASSES];
    const int uninit_rc = se_model_run(in, out); /* must fail before init */
    if (se_model_init() != 0) {
        fprintf(stderr, "se_model_init failed\n");
        return 1;
    }
    printf("hash=%08lx in_scale=%.9g in_zp=%ld out_scale=%.9g out_zp=%ld arena=%lu uninit_rc=%d\n",
           (unsigned long)se_model_hash(), (double)se_model_input_scale(),
           (long)se_model_input_zero_point(), (double)se_model_output_scale(),
           (long)se_model_output_zero_point(), (unsigned long)se_model_arena_bytes(), uninit_rc);
    FILE *fi = fopen(argv[1], "rb");
    FILE *fo = fopen(argv[2], "wb");
    if (fi == NULL || fo == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    while (fread(in, 1, sizeof in, fi) == sizeof in) {
        if (se_model_run(in, out) != 0 || fwrite(out, 1, sizeof out, fo) != sizeof out) {
            return 1;
        }
    }
    fclose(fi);
    fclose(fo);
    return 0;
}

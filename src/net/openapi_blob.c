/*
 * openapi_blob.c - src/net/openapi.json, embedded in the binary.
 *
 * The document is served at GET /openapi.json. Embedding it (rather than
 * reading a file at run time) means the binary always serves the document
 * of its own routes, wherever it is started from; the assembler's .incbin
 * copies the bytes, so the JSON stays one readable file in the tree.
 * fl_openapi_json_end is followed by a NUL for convenience.
 */
__asm__(".section .rodata\n"
        ".global fl_openapi_json\n"
        ".type fl_openapi_json, @object\n"
        "fl_openapi_json:\n"
        ".incbin \"src/net/openapi.json\"\n"
        ".global fl_openapi_json_end\n"
        ".type fl_openapi_json_end, @object\n"
        "fl_openapi_json_end:\n"
        ".byte 0\n"
        ".previous\n");

# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P cmake/embed.cmake: writes a C
# file defining `const unsigned char NAME[]` (the bytes of IN, then a 0) and
# `const size_t NAME_size` (without the 0), so a binary carries the file.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
  "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "const unsigned char ${NAME} [] = {\n${bytes}0x00 };\n"
  "const size_t ${NAME}_size = ${size};\n")
file(RENAME "${OUT}.tmp" "${OUT}")

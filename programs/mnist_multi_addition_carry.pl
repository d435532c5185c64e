% Multi-digit MNIST addition, digit by digit with a carry: the same task as mnist_multi_addition.pl,
% written so that its circuits stay small. Numbers are lists of images, most significant digit first.
nn(mnist_net, [X], Y, [0,1,2,3,4,5,6,7,8,9]) :: digit(X, Y).

% With the sum Z given (training), each position only checks its digit of Z: the ground program grows
% linearly in N. With Z unknown (all answers), the sum's digits are produced position by position.
addition(X, Y, Z) :- nonvar(Z), reverse(X, RX), reverse(Y, RY), check(RX, RY, 0, Z).
addition(X, Y, Z) :- var(Z), reverse(X, RX), reverse(Y, RY), add(RX, RY, 0, Digits), value(Digits, Z).

% check(Xs, Ys, Carry, Z): least significant digits first; Z is what the remaining positions must make.
check([], [], Carry, Carry).
check([X|Xs], [Y|Ys], Carry, Z) :-
    digit(X, DX), digit(Y, DY), S is DX + DY + Carry,
    S mod 10 =:= Z mod 10, Carry2 is S // 10, Z2 is Z // 10,
    check(Xs, Ys, Carry2, Z2).

% add(Xs, Ys, Carry, Digits): the digits of the sum, least significant first, final carry last.
add([], [], Carry, [Carry]).
add([X|Xs], [Y|Ys], Carry, [D|Ds]) :-
    digit(X, DX), digit(Y, DY), S is DX + DY + Carry,
    D is S mod 10, Carry2 is S // 10,
    add(Xs, Ys, Carry2, Ds).

value([], 0).
value([D|Ds], V) :- value(Ds, V0), V is D + 10 * V0.

% For the compiled engine's chain (engine.chain in tasks/mnist_multi_add_15.yaml): one position of the sum,
% least significant first (digits X and Y with carry C give digit D of the sum and carry C2), and a sum
% split into its N digits, least significant first, and what remains (the final carry).
column(X, Y, C, D, C2) :- digit(X, DX), digit(Y, DY), S is DX + DY + C, D is S mod 10, C2 is S // 10.
digits(Z, 0, [], Z).
digits(Z, N, [D|Ds], Last) :- N > 0, D is Z mod 10, Z2 is Z // 10, N2 is N - 1, digits(Z2, N2, Ds, Last).
